"""What `agri demo` runs: a whole district on one machine, and its story in the first minutes.

1. The embedded stack with every service (ingest, alerts, API, dashboard), with per-farm rule
   overrides that shorten the scenario rules' holds (``$AGRI_HOME/demo/rules``).
2. A local webhook receiver (:mod:`agri.stack.receiver`) and six Wanzhou farms
   (:mod:`agri.stack.district`): blocks, nodes, commissioners whose webhooks point at the receiver in
   four channel formats, a read-only API token.
3. Farms with a gateway get their own farm broker and a real ``agri gateway`` whose uplink runs
   through a relay the demo can cut (:mod:`agri.stack.uplink`).
4. The fleet: two nodes per original farm run the real firmware under the MicroPython unix port;
   the rest (>= 200) are simulated in one process (:mod:`agri.stack.fleet`), each with its own
   broker account. A week of history goes through MQTT -> ingest first, in big messages.
5. Sky: generated Sentinel-2-like scenes and one drone flight, imported like any imagery.
6. Scenarios (:data:`SCENARIOS`) play out; the receiver shows what each commissioner was told.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg
from rich.console import Console

from agri.node import config as nodecfg
from agri.node.emulate import Emulator
from agri.node.provision import Request, provision
from agri.stack import district
from agri.stack.fleet import Fleet, SimNode
from agri.stack.manager import Stack
from agri.stack.mosquitto import Broker
from agri.stack.mqtt_auth import MqttAuth
from agri.stack.proc import Detached, StackError, free_port, spawn, terminate
from agri.stack.receiver import DemoReceiver, Endpoint, Message
from agri.stack.uplink import Uplink

FIRMWARE_FARMS = ("longju-citrus", "ganning-pigs", "taibai-tea", "xiaozhou-pond")
FIRMWARE_NODES_PER_FARM = 2


@dataclass(frozen=True)
class Pace:
    """How fast the demo runs. ``normal`` is for people; ``fast`` compresses time for tests."""

    name: str
    sim_interval: dict[str, int]  # sampling interval per farm kind
    scenario_interval: int  # nodes in a scenario report this often
    firmware_interval: int
    hold_s: int  # scenario rules must hold this long (field defaults: 15-30 min)
    gateway_health_s: float
    gateway_after_s: int
    history_step_s: int
    lead_s: float  # first scenario starts this long after the fleet is live
    spacing_s: float  # between scenario starts
    length_s: float  # how long each condition lasts


NORMAL = Pace("normal", dict(district.FARM_KINDS_INTERVAL), 15, 10, 60, 5.0, 30, 1200, 20, 45, 120)
FAST = Pace(
    "fast", {"orchard": 5, "pig_farm": 5, "tea_garden": 5, "pond": 5}, 1, 2, 4, 1.0, 4, 7200, 2, 2, 10
)


@dataclass(frozen=True)
class Scenario:
    name: str
    farm: str
    node: str  # a simulated node
    rule: str  # the alert rule it trips
    what: str
    values: dict[str, float]  # metric -> value while the condition lasts
    needs: str | None = None  # a platform piece it needs (skipped, with one log line, until present)
    history_h: float = 0.0  # the condition began this long before the demo went live (in the history)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("barn-heat", "ganning-pigs", "s-001", "heat-stress",
             "barn heat stress: 29.5 °C at 85 % RH (THI about 83) in barn 1 of 甘宁镇生态猪场",
             {"air_t": 29.5, "air_rh": 85.0}),
    Scenario("dawn-oxygen", "xiaozhou-pond", "s-001", "do-low",
             "dawn oxygen sag: dissolved oxygen falls to 2.4 mg/L in pond 1 of 小周镇生态渔场",
             {"do_mgl": 2.4}),
    Scenario("frost-night", "taolong-citrus", "s-001", "frost",
             "frost night: −3.5 °C in block 1 of 太龙镇古红桔园", {"air_t": -3.5, "air_rh": 95.0}),
    Scenario("stuck-soil", "taolong-citrus", "s-002", "soil-stuck",
             "stuck soil-moisture probe in 太龙镇古红桔园: 23.41 % on every reading for 28 h (flat line)",
             {"soil_vwc": 23.41}, needs="alerts.analysis", history_h=28.0),
    Scenario("uplink-outage", "ganning-pigs", "gw-1", "gateway-down",
             "uplink outage at 甘宁镇生态猪场: the 4G link drops, the gateway spools, then catches up",
             {}),
    Scenario("ndvi-drop", "longju-citrus", "sat-b3", "ndvi-drop",
             "block b3 of 龙驹镇柑橘园: its NDVI fell against its neighbours in the newest satellite scene",
             {}, needs="sky"),
)  # fmt: skip


def qc_available() -> bool:
    """QC flags reach alert rules when the alert service computes them (alerts.analysis)."""
    try:
        return importlib.util.find_spec("alerts.analysis") is not None
    except ModuleNotFoundError:
        return False


@dataclass
class DemoOptions:
    fast: bool = False
    scale: float = 1.0  # share of the simulated nodes (tests use less)
    history_days: float = 7.0
    firmware: bool = True
    sky: bool = True
    print_every_s: float = 30.0
    quiesce: bool = False  # tests: once every scenario is over, stop all publishers and report counts

    @property
    def pace(self) -> Pace:
        return FAST if self.fast else NORMAL


@dataclass
class Demo:
    """Everything the demo started, so it can all be stopped."""

    stack: Stack
    opts: DemoOptions
    say: Callable[[str], None]
    receiver: DemoReceiver | None = None
    brokers: list[Broker] = field(default_factory=list)
    gateways: list[Detached] = field(default_factory=list)
    uplinks: dict[str, Uplink] = field(default_factory=dict)
    fleet: Fleet | None = None
    fleet_thread: threading.Thread | None = None
    fleet_stop: threading.Event = field(default_factory=threading.Event)
    firmware: list[tuple[Emulator, subprocess.Popen[str]]] = field(default_factory=list)
    token: str | None = None
    started_live: float = 0.0
    scenario_state: dict[str, str] = field(default_factory=dict)
    outage_cut_at: float | None = None
    outage_acked_before: int = 0
    sky_state: str = "importing"  # importing | done | skipped (the ndvi-drop scenario plays once done)

    @property
    def home(self) -> Path:
        return self.stack.home

    @property
    def demo_dir(self) -> Path:
        return self.home / "demo"

    # --- setup ----------------------------------------------------------------------------------

    def start_stack(self, log: Callable[[str], None]) -> None:
        p = self.opts.pace
        rules = district.write_rules(self.demo_dir / "rules", p.hold_s, p.gateway_after_s)
        os.environ["AGRI_ALERT_FARM_RULES"] = str(rules)
        self.stack.up(log=log)

    def start_receiver(self) -> None:
        def show(m: Message) -> None:
            ok = "[green]signature verified[/]" if m.verified else f"[red]NOT verified ({m.check})[/]"
            self.say(f"[bold]📨 webhook #{m.n}[/] to {m.commissioner} ({m.channel}): {m.event} · {ok}")

        self.receiver = DemoReceiver(log=show)

    def seed(self) -> list[SimNode]:
        st, p = self.stack, self.opts.pace
        assert self.receiver is not None
        urls: dict[str, str] = {}
        secrets: dict[str, str | None] = {}
        for f in district.FARMS:
            c = f.commissioner
            secret = st.secrets.get(f"demo_hook_{c.name}", 24)
            if c.channel == "generic":  # Standard Webhooks: whsec_ + base64 of the key
                secret = "whsec_" + base64.b64encode(secret.encode()[:24]).decode()
            secrets[c.name] = secret
            urls[c.name] = self.receiver.add(Endpoint(c.name, c.channel, secret))
        ports: dict[str, int] = {}
        for f in district.FARMS:
            ports[f.id] = st.s.mqtt_port
        with psycopg.connect(st.database_url(), autocommit=True) as conn:
            district.seed_farms(conn, district.FARMS)
            district.seed_commissioners(conn, district.FARMS, urls, secrets)
            self.token = district.read_token(conn)
        # Farm brokers first: nodes of a farm with a gateway talk to it.
        for f in district.FARMS:
            if f.gateway:
                ports[f.id] = free_port()
        auth = st.mqtt_auth()
        intervals = dict(p.sim_interval)
        with psycopg.connect(st.database_url(), autocommit=True) as conn:
            nodes = district.sim_nodes(
                conn, district.FARMS, auth, "127.0.0.1", ports, intervals, self.opts.scale
            )
        auth.save()
        st.broker().reload()
        scen = {(s.farm, s.node) for s in SCENARIOS}
        for n in nodes:
            if (n.farm, n.node) in scen:
                n.interval = p.scenario_interval
        for f in district.FARMS:
            if f.gateway:
                self._farm_gateway(f, ports[f.id], auth, [n for n in nodes if n.farm == f.id])
        self.wait_gateways_subscribed()
        self.say(
            f"[green]✓[/] district seeded: {len(district.FARMS)} farms, "
            f"{sum(f.blocks for f in district.FARMS)} blocks, {len(nodes)} simulated nodes, "
            f"{sum(1 for f in district.FARMS if f.gateway)} gateways, {len(district.FARMS)} commissioners"
        )
        return nodes

    def _farm_gateway(self, f: district.Farm, port: int, central: MqttAuth, nodes: list[SimNode]) -> None:
        """The farm's own broker (its nodes' accounts), its gateway's accounts, the uplink relay."""
        st, p = self.stack, self.opts.pace
        assert f.gateway is not None
        root = self.demo_dir / "farms" / f.id / "mqtt"
        broker = Broker(root=root, port=port)
        local = MqttAuth(root)
        for n in nodes:
            acc = central.get(n.user)
            assert acc is not None
            local.set_hashed(n.user, acc.pw_hash, n.farm, n.node)
        gw_user, gw_pw = f"gw-{f.id}-{f.gateway}", st.secrets.get(f"demo_gw_{f.id}")
        local.set(gw_user, gw_pw, "gateway", f.id, f.gateway)
        local.save()
        central.set(gw_user, gw_pw, "gateway", f.id, f.gateway)
        central.save()
        st.broker().reload()
        broker.stop()
        broker.start()
        self.brokers.append(broker)
        uplink = Uplink("127.0.0.1", st.s.mqtt_port)
        self.uplinks[f.id] = uplink
        env = dict(os.environ)
        env.update(
            AGRI_HOME=str(self.home),
            AGRI_GATEWAY_FARM=f.id,
            AGRI_GATEWAY_ID=f.gateway,
            AGRI_GATEWAY_LOCAL_URL=broker.url(gw_user, gw_pw),
            AGRI_GATEWAY_UPSTREAM_URL=f"mqtt://{gw_user}:{gw_pw}@127.0.0.1:{uplink.port}",
            AGRI_GATEWAY_SPOOL_PATH=str(self.demo_dir / "farms" / f.id / "spool.db"),
            AGRI_GATEWAY_HEALTH_INTERVAL_S=str(p.gateway_health_s),
            AGRI_GATEWAY_BACKOFF_MIN_S="0.5",
            AGRI_GATEWAY_BACKOFF_MAX_S="2",
            AGRI_GATEWAY_UPSTREAM_KEEPALIVE_S="5",
            AGRI_GATEWAY_SPOOL_SYNC="normal",
        )
        proc = spawn(
            [sys.executable, "-m", "agri.cli.main", "gateway"],
            self.home / "log" / f"gateway-{f.id}.log",
            self.home / "run" / f"demo-gateway-{f.id}.pid",
            env=env,
        )
        self.gateways.append(proc)
        self.say(
            f"[green]✓[/] {f.id}: farm broker :{port}, gateway {f.gateway} (pid {proc.pid})"
            " → central broker through a cuttable 4G stand-in"
        )

    def wait_gateways_subscribed(self, timeout: float = 60.0) -> None:
        """A farm broker keeps nothing for a subscriber that has not subscribed yet: nodes wait."""
        logs = [self.home / "log" / f"gateway-{f.id}.log" for f in district.FARMS if f.gateway]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(p.exists() and "event=local_subscribed" in p.read_text(errors="replace") for p in logs):
                return
            if any(g.poll() is not None for g in self.gateways):
                break
            time.sleep(0.2)
        raise StackError(
            f"a farm gateway did not subscribe to its farm broker: see {', '.join(map(str, logs))}"
        )

    def start_firmware(self) -> None:
        st, p = self.stack, self.opts.pace
        with_gw = {f.id: f for f in district.FARMS if f.gateway}
        farms = {f.id: f for f in district.FARMS}
        for fid in FIRMWARE_FARMS:
            f = farms[fid]
            port = (
                next((b.port for b in self.brokers if f.id in str(b.root)), None) if fid in with_gw else None
            )
            for i in range(1, FIRMWARE_NODES_PER_FARM + 1):
                res = provision(
                    st,
                    Request(farm=f.id, node=f"n-{i:02d}", node_name=f"{f.name} {i}号节点 (MicroPython)",
                            interval=p.firmware_interval, broker_port=port, broker_host="127.0.0.1"),
                )  # fmt: skip
                cfg = nodecfg.load(res.config_path)
                if port is not None:
                    acc = st.mqtt_auth().get(res.username)
                    assert acc is not None
                    b = next(b for b in self.brokers if f.id in str(b.root))
                    local = MqttAuth(b.root)
                    local.set_hashed(res.username, acc.pw_hash, f.id, f"n-{i:02d}")
                    local.save()
                    b.reload()
                emu = Emulator(config=cfg, root=self.demo_dir / "firmware" / f.id / cfg.node)
                with open(self.home / "log" / f"node-{f.id}-{cfg.node}.log", "a") as logf:
                    proc = emu.start(stdout=logf.fileno())
                self.firmware.append((emu, proc))
        self.say(
            f"[green]✓[/] {len(self.firmware)} nodes run the real MicroPython firmware (unix port); "
            f"logs: {self.home / 'log'}/node-*.log"
        )

    def start_fleet(self, nodes: list[SimNode]) -> None:
        p = self.opts.pace
        fleet = Fleet(nodes)
        self.start_history_scenarios(nodes)
        fleet.connect()
        n = fleet.wait_connected(60)
        self.say(f"[green]✓[/] {n}/{len(nodes)} simulated nodes connected (one process, one thread)")
        if self.opts.history_days > 0:
            t0 = time.monotonic()
            end = time.time() - 60
            fleet.backfill(end - self.opts.history_days * 86400, end, p.history_step_s, per_msg=10_000)
            self.say(
                f"[green]✓[/] {self.opts.history_days:g} days of history sent through MQTT → ingest: "
                f"{fleet.acked_readings:,} readings in {time.monotonic() - t0:.1f} s"
            )
        for node in nodes:
            node.next_t = 0.0
        self.fleet = fleet
        self.fleet_thread = threading.Thread(
            target=fleet.run, args=(self.fleet_stop,), name="fleet", daemon=True
        )
        self.fleet_thread.start()
        self.started_live = time.monotonic()

    # --- scenarios ------------------------------------------------------------------------------

    def cannot_play(self, sc: Scenario) -> str | None:
        if sc.needs == "sky" and self.sky_state == "skipped":
            return "the sky layers were not imported"
        if sc.needs == "alerts.analysis" and not qc_available():
            return "QC flags do not reach alert rules yet (alerts.analysis)"
        if sc.history_h and self.opts.history_days * 24 < sc.history_h + 1:
            return f"it needs {sc.history_h + 1:g} h of history (--history-days)"
        return None

    def start_history_scenarios(self, nodes: list[SimNode]) -> None:
        """Conditions that began before the demo went live are part of the backfilled history."""
        by_key = {(n.farm, n.node): n for n in nodes}
        for sc in SCENARIOS:
            node = by_key.get((sc.farm, sc.node))
            if not sc.history_h or node is None or self.cannot_play(sc):
                continue
            since, vals = time.time() - sc.history_h * 3600, dict(sc.values)
            node.override = lambda m, t, _v, vals=vals, since=since: vals.get(m) if t >= since else None

    def scenario_window(self, i: int) -> tuple[float, float]:
        """A scenario's (start, end); one that began in the history is announced at once."""
        p = self.opts.pace
        if SCENARIOS[i].history_h:
            return self.started_live, self.started_live + p.length_s
        k = sum(1 for sc in SCENARIOS[:i] if not sc.history_h)
        start = self.started_live + p.lead_s + k * p.spacing_s
        return start, start + p.length_s

    def play(self, now: float) -> None:
        """Switch scenario conditions on and off as their windows open and close."""
        assert self.fleet is not None
        by_key = {(n.farm, n.node): n for n in self.fleet.nodes}
        for i, sc in enumerate(SCENARIOS):
            start, end = self.scenario_window(i)
            state = self.scenario_state.get(sc.name, "waiting")
            if state == "waiting" and now >= start:
                if sc.needs == "sky" and self.sky_state == "importing":
                    continue  # plays when the scenes are in (the import runs in the background)
                why = self.cannot_play(sc)
                if why:
                    self.say(f"[yellow]↷[/] scenario {sc.name} skipped: {why}")
                    self.scenario_state[sc.name] = "skipped"
                    continue
                if sc.needs == "sky":
                    pass  # the newest scene, imported, is the condition: the alert service evaluates it
                elif sc.rule == "gateway-down":
                    up = self.uplinks.get(sc.farm)
                    if up is None:
                        self.scenario_state[sc.name] = "skipped"
                        continue
                    self.outage_acked_before = self.fleet.acked_readings
                    up.cut()
                    self.outage_cut_at = now
                else:
                    node = by_key.get((sc.farm, sc.node))
                    if node is None:
                        self.scenario_state[sc.name] = "skipped"
                        continue
                    if not sc.history_h:
                        vals = dict(sc.values)
                        node.override = lambda m, _t, _v, vals=vals: vals.get(m)
                self.say(f"[bold magenta]▶ scenario[/] {sc.what}")
                self.scenario_state[sc.name] = "on"
            elif state == "on" and now >= end:
                if sc.rule == "gateway-down":
                    self.uplinks[sc.farm].restore()
                    self.say(
                        f"[bold magenta]■ scenario[/] {sc.name}: uplink restored; the gateway sends its spool"
                    )
                elif sc.rule != "soil-stuck" and sc.needs != "sky":  # a stuck probe stays stuck
                    by_key[(sc.farm, sc.node)].override = None
                    self.say(f"[bold magenta]■ scenario[/] {sc.name}: back to normal")
                self.scenario_state[sc.name] = "done"

    def scenarios_over(self, now: float) -> bool:
        last_end = self.scenario_window(len(SCENARIOS) - 1)[1]
        return now >= last_end + self.opts.pace.length_s and all(
            self.scenario_state.get(s.name) in ("done", "skipped") or s.rule == "soil-stuck"
            for s in SCENARIOS
        )

    def quiesce(self) -> None:
        """Stop every publisher (fleet, firmware) and wait for the fleet's messages to be acked."""
        self.fleet_stop.set()
        if self.fleet_thread is not None:
            self.fleet_thread.join(10)
        if self.fleet is not None:
            self.fleet.drain(60)
        self.stop_firmware()
        self.write_status(quiet=True)
        self.say(
            "[green]✓[/] publishers stopped (--quiesce): counts in " + str(self.demo_dir / "status.json")
        )

    def write_status(self, quiet: bool = False) -> None:
        s = self.stack.s
        f = self.fleet
        obj = {
            "quiet": quiet,
            "receiver": self.receiver.url if self.receiver else None,
            "api": f"http://{s.api_host}:{s.api_port}",
            "dashboard": f"http://127.0.0.1:{s.dashboard_port}",
            "token": self.token,
            "sim_nodes": len(f.nodes) if f else 0,
            "published": f.acked_readings if f else 0,
            "sent": f.sent_readings if f else 0,
            "published_by_node": {f"{n.farm}/{n.node}": n.published for n in f.nodes} if f else {},
            "scenarios": [
                {
                    "name": sc.name,
                    "farm": sc.farm,
                    "node": sc.node,
                    "rule": sc.rule,
                    "state": self.scenario_state.get(sc.name, "waiting"),
                }
                for sc in SCENARIOS
            ],
            "firmware_nodes": [str(e.root.relative_to(self.demo_dir / "firmware")) for e, _ in self.firmware],
        }
        self.demo_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.demo_dir / "status.json.tmp"
        tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=1))
        os.replace(tmp, self.demo_dir / "status.json")

    def stop_firmware(self) -> None:
        for _emu, proc in self.firmware:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(2)
        for _emu, proc in self.firmware:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    # --- teardown -------------------------------------------------------------------------------

    def stop(self) -> None:
        self.fleet_stop.set()
        if self.fleet_thread is not None:
            self.fleet_thread.join(10)
        if self.fleet is not None:
            with contextlib.suppress(Exception):
                self.fleet.close()
        self.stop_firmware()
        for proc in self.gateways:
            terminate(proc.pid)
        for up in self.uplinks.values():
            up.close()
        for b in self.brokers:
            b.stop()
        if self.receiver is not None:
            self.receiver.close()


def stored_readings(stack: Stack) -> int | None:
    try:
        with psycopg.connect(stack.database_url(), connect_timeout=3) as conn:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return None


def alert_count(stack: Stack) -> int | None:
    try:
        with psycopg.connect(stack.database_url(), connect_timeout=3) as conn:
            row = conn.execute("SELECT count(*) FROM alerts").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return None


def demo_lock(home: Path) -> IO[str]:
    """Hold ``$AGRI_HOME/run/demo.lock`` for this process's life (the returned file: keep it open).

    Two demos on one home would share one stack: the second would find the first's services
    "already running" and play its scenarios into them, and stopping either would stop both.
    """
    (home / "run").mkdir(parents=True, exist_ok=True)
    f = open(home / "run" / "demo.lock", "a+")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        pid = f.read().strip() or "?"
        f.close()
        raise StackError(
            f"another `agri demo` (pid {pid}) is running with AGRI_HOME={home}: stop it first"
            f" (Ctrl-C in its terminal, or kill -TERM {pid}), or give this one another AGRI_HOME"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def run(stack: Stack, stop: threading.Event, console: Console, opts: DemoOptions | None = None) -> None:
    opts = opts or DemoOptions()

    def say(m: str) -> None:
        console.print(m, highlight=False, soft_wrap=True)

    demo = Demo(stack, opts, say)
    try:
        demo.start_stack(lambda m: say(f"[green]✓[/] {m}"))
        demo.start_receiver()
        nodes = demo.seed()
        if opts.firmware:
            demo.start_firmware()
        demo.start_fleet(nodes)
        if opts.sky:  # in the background: the scenarios do not wait for the imagery
            threading.Thread(target=start_sky, args=(demo,), name="sky", daemon=True).start()
        banner(demo)
        demo.write_status()
        last = demo.started_live = time.monotonic()
        quiet = False
        while not stop.wait(0.5):
            now = time.monotonic()
            if quiet:
                continue
            demo.play(now)
            if opts.quiesce and demo.scenarios_over(now):
                demo.quiesce()
                quiet = True
                continue
            for emu, proc in list(demo.firmware):
                if proc.poll() is not None:
                    say(f"[red]firmware node {emu.root.name} exited ({proc.returncode})[/]")
                    demo.firmware.remove((emu, proc))
            if time.monotonic() - last >= opts.print_every_s:
                last = time.monotonic()
                say(
                    f"  readings stored: {stored_readings(stack) or 0:,} · alerts: {alert_count(stack) or 0}"
                    f" · webhooks received: {len(demo.receiver.snapshot()) if demo.receiver else 0}"
                )
    finally:
        demo.stop()


def start_sky(demo: Demo) -> None:
    """Generated imagery through `agri sky import` (skipped with one line when sky is absent)."""
    try:
        from agri.stack import skydemo
    except ImportError as exc:  # pragma: no cover - rasterio missing
        demo.say(f"[yellow]↷[/] sky layers skipped: {exc}")
        demo.sky_state = "skipped"
        return
    try:
        t0 = time.monotonic()
        n = skydemo.import_demo_imagery(demo.stack, demo.demo_dir / "sky", district.FARMS)
        demo.say(
            f"[green]✓[/] sky: {n} satellite scenes and one drone flight imported through `agri sky import`'s"
            f" path in {time.monotonic() - t0:.1f} s; block b3 of {skydemo.NDVI_DROP_FARM} lost NDVI"
            " against its neighbours in the newest scene (alert ndvi-drop; dashboard: farm page, sky layer)"
        )
        demo.sky_state = "done"
    except Exception as exc:
        demo.say(f"[yellow]↷[/] sky layers skipped: {exc}")
        demo.sky_state = "skipped"


def banner(demo: Demo) -> None:
    s = demo.stack.s
    status = demo.stack.status()
    api = status.get("api", {}).get("address") or f"http://{s.api_host}:{s.api_port}"
    dash = status.get("dashboard", {}).get("address") or f"http://127.0.0.1:{s.dashboard_port}"
    r = demo.receiver.url if demo.receiver else "?"
    demo.say("")
    demo.say("[bold]The district is live.[/]")
    demo.say(f"  dashboard        {dash}   (?lang=en for English)")
    demo.say(f"  API              {api}/docs   token (read): {demo.token}")
    demo.say(f"                   curl -H 'Authorization: Bearer {demo.token}' {api}/farms")
    demo.say(f"  webhook receiver {r}/   (every message, its channel format and its signature check)")
    demo.say(f"  logs             {demo.home / 'log'}")
    demo.say("  scenarios in the next minutes: " + ", ".join(sc.name for sc in SCENARIOS))
    demo.say("Press Ctrl-C to stop everything.")
