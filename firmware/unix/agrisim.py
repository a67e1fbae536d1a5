# Simulated node hardware for the unix port (`agri node emulate`, tests). A farm "world" with
# diurnal signals drives simulated chips that answer on their buses like the real ones (same
# commands, frames and CRCs), so the real drivers run unmodified. Faults are injected per metric.
#
# sim.json (optional, next to node.json):
#   {"seed": 1, "clock": "real" | "fast", "start": <unix s, or negative = seconds before now>,
#    "cycles": 0 (forever) | N, "heap_every": 0 | N,
#    "faults": [{"metric": "air_t", "kind": "stuck|spike|drift|dead", "from": 10, "to": 20,
#                "size": 5.0}]}
# "from"/"to" count sample cycles since start ("to" exclusive, omitted = forever); "size" is the
# spike height or the drift per cycle. With "clock": "fast" sleeping advances a virtual clock at
# once, so thousands of cycles run in seconds.
import json
import math
import random
import struct
import time

from agrinode import fsutil
from agrinode.crc import crc8_maxim, crc8_sensirion

# Diurnal signals, one row per metric: mean, amplitude, hour of the daily maximum (UTC+8),
# noise, lo, hi; all but the hour x100. Packed as int32s in one bytes object: a dict of tuples
# costs the unix port's heap about ten times more. Rows (generated from this table):
# "air_t": (1700, 600, 15, 30, -4000, 6000),
# "air_rh": (7200, -1800, 15, 100, 2000, 10000),
# "soil_t": (1700, 200, 17, 10, -3000, 6000),
# "water_t": (2200, 120, 17, 5, -500, 5000),
# "soil_vwc": (3000, -150, 15, 20, 0, 10000),
# "leaf_wet": (4500, -4000, 14, 300, 0, 10000),
# "co2_ppm": (120000, -40000, 14, 3000, 30000, 4000000),
# "nh3_ppm": (1200, -500, 14, 80, 0, 50000),
# "do_mgl": (650, 250, 16, 10, 0, 2500),
# "ph": (760, 40, 16, 2, 0, 1400),
# "bat_v": (390, 10, 13, 1, 300, 420),
NAMES = "air_t air_rh soil_t water_t soil_vwc leaf_wet co2_ppm nh3_ppm do_mgl ph bat_v"
TABLE = b"\xa4\x06\x00\x00X\x02\x00\x00\x0f\x00\x00\x00\x1e\x00\x00\x00`\xf0\xff\xffp\x17\x00\x00 \x1c\x00\x00\xf8\xf8\xff\xff\x0f\x00\x00\x00d\x00\x00\x00\xd0\x07\x00\x00\x10'\x00\x00\xa4\x06\x00\x00\xc8\x00\x00\x00\x11\x00\x00\x00\n\x00\x00\x00H\xf4\xff\xffp\x17\x00\x00\x98\x08\x00\x00x\x00\x00\x00\x11\x00\x00\x00\x05\x00\x00\x00\x0c\xfe\xff\xff\x88\x13\x00\x00\xb8\x0b\x00\x00j\xff\xff\xff\x0f\x00\x00\x00\x14\x00\x00\x00\x00\x00\x00\x00\x10'\x00\x00\x94\x11\x00\x00`\xf0\xff\xff\x0e\x00\x00\x00,\x01\x00\x00\x00\x00\x00\x00\x10'\x00\x00\xc0\xd4\x01\x00\xc0c\xff\xff\x0e\x00\x00\x00\xb8\x0b\x00\x000u\x00\x00\x00\t=\x00\xb0\x04\x00\x00\x0c\xfe\xff\xff\x0e\x00\x00\x00P\x00\x00\x00\x00\x00\x00\x00P\xc3\x00\x00\x8a\x02\x00\x00\xfa\x00\x00\x00\x10\x00\x00\x00\n\x00\x00\x00\x00\x00\x00\x00\xc4\t\x00\x00\xf8\x02\x00\x00(\x00\x00\x00\x10\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00x\x05\x00\x00\x86\x01\x00\x00\n\x00\x00\x00\r\x00\x00\x00\x01\x00\x00\x00,\x01\x00\x00\xa4\x01\x00\x00"


class SimHal:
    # The methods of agrinode.hal.Hal backed by simulated chips; also the fast clock.
    sim = True
    fast = False

    def __init__(self, cfg, log):
        self.cfg = cfg
        raw = fsutil.read_atomic("sim.json")
        o = {}
        if raw:
            try:
                o = json.loads(raw)
            except ValueError:
                log("sim_config_invalid", "error", file="sim.json")
        self.opts = o if isinstance(o, dict) else {}
        random.seed(self.opts.get("seed", 1))
        self.faults = self.opts.get("faults", [])
        die = self.opts.get("die")
        if die:
            fsutil.hook = _dier(die)
        self.t = self.dt = self.cycle = self.ms = self.t0 = self.pt = 0
        self.noise = {}
        self.frozen = {}
        self.rain = 0
        self.pins = {}  # pin -> its counter input (a new sampler after a config change replaces it)
        self.buses = {}
        self.probes = {}

    # --- world ----------------------------------------------------------------------------------

    def before_sample(self, t, cycle):
        self.dt = t - self.t if self.t else 0
        self.t = t
        self.cycle = cycle
        self.rain = self.rain - 1 if self.rain > 0 else (3 + int(random.random() * 8) if random.random() < 0.02 else 0)
        for p in self.pins.values():
            p.fire()

    def fault(self, metric):
        for f in self.faults:
            if f.get("metric") == metric and f.get("from", 0) <= self.cycle < f.get("to", 1 << 30):
                return f
        return None

    def dead(self, metric):
        f = self.fault(metric)
        return f is not None and f.get("kind") == "dead"

    def value(self, metric):
        # Physical value now: diurnal cycle + correlated noise, then any active fault.
        try:
            m = struct.unpack_from("<6i", TABLE, 24 * NAMES.split().index(metric))
        except ValueError:
            m = (0, 0, 0, 50, 0, 100000)
        h = ((self.t + 28800) % 86400) / 3600
        n = 0.8 * self.noise.get(metric, 0) + 0.006 * m[3] * (random.random() - 0.5)
        self.noise[metric] = n
        v = (m[0] + m[1] * math.cos(2 * math.pi * (h - m[2]) / 24)) / 100 + n
        if metric == "soil_vwc" and self.rain:
            v += 8
        f = self.fault(metric)
        if f is None:
            self.frozen.pop(metric, None)
        else:
            k = f.get("kind")
            if k == "stuck":
                v = self.frozen.setdefault(metric, v)
            elif k == "spike":
                v += f.get("size", 25.0)
            elif k == "drift":
                v += f.get("size", 0.05) * (self.cycle - f.get("from", 0) + 1)
        return min(m[5] / 100, max(m[4] / 100, v))

    # --- buses (the Hal interface) ------------------------------------------------------------------

    def i2c(self, s):
        spec = s.get("i2c", {})
        key = (spec.get("id", 0), spec.get("scl"), spec.get("sda"))
        bus = self.buses.get(key)
        if bus is None:
            bus = self.buses[key] = SimBus(self, s)
        bus.devices[s["addr"]] = (s["type"], s["metrics"])
        return bus

    def ow(self, s):
        return SimBus(self, s)

    adc = ow

    def pulse(self, s):
        p = SimBus(self, s)
        self.pins[s["pin"]] = p
        return p

    def delay_ms(self, ms):
        pass  # simulated chips answer at once

    def irq_ticks_ms(self):
        return self.pt  # pulse timestamps for the rain gauge's debounce

    def link_up(self, timeout_ms=0):
        return True

    def rssi(self):
        if self.opts.get("crash") == "rssi":  # sim.json "crash": a bug on the normal path, each cycle
            raise RuntimeError("injected fault")
        return -75 + int(random.random() * 10)

    def wdt(self, seconds):
        return self  # feeding a simulated watchdog does nothing

    def feed(self):
        pass

    def woke_from_deepsleep(self):
        return False

    def can_deepsleep(self):
        return False

    def run_options(self):
        return self.opts

    # --- clock ------------------------------------------------------------------------------------

    def clock(self, spool, log):
        if self.opts.get("clock") != "fast":
            from agrinode.clock import Clock

            return Clock(spool.t_last, log)
        self.fast = True
        start = self.opts.get("start")
        if not isinstance(start, int):
            start = -(self.opts.get("cycles") or 10000) * self.cfg["interval"]
        if start < 0:
            start += int(time.time())
        self.t0 = max(start, spool.t_last + 1)
        return self

    def now(self):
        return self.t0 + self.ms // 1000

    def ticks_ms(self):
        return self.ms

    def sleep_ms(self, ms):
        self.ms += ms

    def sync(self, host, log):
        return True


def _dier(d):
    # sim.json "die": {"file": "state", "step": 1, "n": 40}: the process kills itself (SIGKILL,
    # as a power cut: nothing flushed, no handler runs) at the n-th time write_atomic reaches
    # `step` (0 temp file created empty, 1 written, 2 old file removed (FAT), 3 renamed) for a path
    # ending in `file`.
    # With "raise": N, the n-th to (n+N-1)-th such points raise MemoryError instead (an
    # allocation failing there).
    left = [d.get("n", 1), d.get("raise", 0)]

    def hook(path, step):
        if step == d.get("step", 1) and path.endswith(d.get("file", "")):
            left[0] -= 1
            if left[0] <= 0:
                if "raise" not in d:
                    kill_self()
                if left[1] > 0:
                    left[1] -= 1
                    raise MemoryError("injected")

    return hook


def kill_self():
    import ffi

    libc = ffi.open("libc.so.6")
    libc.func("i", "kill", "ii")(libc.func("i", "getpid", "")(), 9)


def _word(buf, i, w):
    w = max(0, min(0xFFFF, int(w + 0.5)))
    buf[i] = w >> 8
    buf[i + 1] = w & 0xFF
    buf[i + 2] = crc8_sensirion(buf, i, i + 2)


class SimBus:
    # One simulated bus object standing in for machine.I2C (SHT3x/SHT4x single shot and SCD4x
    # periodic chips behind their addresses), onewire.OneWire (one DS18B20), machine.ADC (the
    # probe's voltage for the world's value, through the node's calibration) or a counter Pin
    # (the interval's flow-meter or rain-gauge pulses, delivered before each sample).
    IRQ_FALLING = 2

    def __init__(self, hal, s):
        # Only the attributes its kind uses: this heap is the board's (a board's bus objects are
        # small C objects).
        self.hal = hal
        self.kind = k = s["bus"]
        self.metric = s["metrics"][0]
        c = s["cal"]
        if k == "i2c" or k == "ow":
            self.frame = bytearray(b"\x50\x05\x4b\x46\x7f\xff\x0c\x10\x1c")  # DS18B20 power-on pad
        if k == "i2c":
            self.devices = {}
            self.started = []
        elif self.kind == "adc":
            self.n = self.u = 0
            from agrinode.drivers.analog import calibrate

            # The probe's true response is fixed when it is first wired up; a later calibration
            # change in the config changes what the driver computes, as it would on a board.
            self.vref = s.get("vref", 3.3)
            self.cal = hal.probes.setdefault(s["pin"], calibrate(s["type"], c))
        elif self.kind == "pulse":
            self.rest = 0.0
            self.handler = None
            self.per_unit = c.get("pulses_per_l", 450) if s["type"] == "flow" else 1 / c.get("mm_per_tip", 0.2)

    # I2C
    def writeto(self, addr, cmd):
        d = self.devices.get(addr)
        if d is None or self.hal.dead(d[1][0]):
            raise OSError(19)  # ENODEV: nobody acknowledged the address
        w, f, v = _word, self.frame, self.hal.value
        cmd = bytes(cmd)
        if cmd in (b"\x24\x00", b"\xfd"):
            w(f, 0, (v(d[1][0]) + 45) * 65535 / 175)
            rh = v(d[1][1])
            w(f, 3, (rh + 6) * 65535 / 125 if d[0] == "sht4x" else rh * 65535 / 100)
        elif cmd == b"\x21\xb1":
            if addr not in self.started:
                self.started.append(addr)
        elif cmd == b"\xe4\xb8":
            w(f, 0, 0x8006 if addr in self.started else 0x8000)
        elif cmd == b"\xec\x05":
            w(f, 0, v(d[1][0]))
            w(f, 3, (v("air_t") + 45) * 65536 / 175)
            w(f, 6, v("air_rh") * 65536 / 100)
        return 1

    def readfrom_into(self, addr, buf):
        self.readinto(buf)

    # OneWire
    def reset(self, required=False):
        return not self.hal.dead(self.metric)

    def writebyte(self, b):
        if b == 0x44:  # Convert T: 12-bit reading into the scratchpad, with its CRC
            raw = int(self.hal.value(self.metric) * 16 + 0.5) & 0xFFFF
            self.frame[0] = raw & 0xFF
            self.frame[1] = raw >> 8
            self.frame[8] = crc8_maxim(self.frame, 0, 8)

    def select_rom(self, rom):
        pass

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = self.frame[i]

    # ADC
    def read_u16(self):
        if self.hal.dead(self.metric):
            return 0  # open input
        if self.n % 8 == 0:  # one world value per averaged measurement
            v1, x1, v2, x2 = self.cal
            v = v1 + (self.hal.value(self.metric) - x1) * (v2 - v1) / (x2 - x1)
            self.u = max(0, min(65535, int(v / self.vref * 65535 + 0.5)))
        self.n += 1
        return self.u

    # Pin with IRQ
    def irq(self, handler=None, trigger=None):
        self.handler = handler

    def fire(self):
        h = self.hal
        if h.dead(self.metric):
            return
        if self.metric == "rain_mm":
            x = 0.6 if h.rain else 0.0
        else:  # drinking water, litres: more by day
            x = max(0.0, (0.3 + 0.25 * math.cos(2 * math.pi * (((h.t + 28800) % 86400) / 3600 - 13) / 24)) * h.dt / 60)
        x = x * self.per_unit + self.rest
        n = int(x)
        self.rest = x - n
        for _ in range(n):
            h.pt += 100  # 100 ms apart: past the contacts' debounce
            self.handler(self)
