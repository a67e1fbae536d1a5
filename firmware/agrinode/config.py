# Node configuration: /node.json written by `agri node add` / `agri flash`, plus the retained
# .../config message from the platform (saved as remote.json) overriding interval, batch,
# sensors and calibration. Schema: firmware/README.md. A bad value is reported on one line
# (event=config_invalid) and replaced by its safe default; a broken file falls back to the last
# good copy, else to defaults that keep sampling into the spool without a network.
import json

from agrinode import fsutil

# type -> (bus kind, default metric names of the driver's measure() outputs, driver module)
TYPES = {
    "sht3x": ("i2c", ("air_t", "air_rh"), "sht"),
    "sht4x": ("i2c", ("air_t", "air_rh"), "sht"),
    "scd4x": ("i2c", ("co2_ppm",), "scd4x"),
    "ds18b20": ("ow", ("soil_t",), "ds18b20"),
    "soil": ("adc", ("soil_vwc",), "analog"),
    "leaf": ("adc", ("leaf_wet",), "analog"),
    "nh3": ("adc", ("nh3_ppm",), "analog"),
    "do": ("adc", ("do_mgl",), "analog"),
    "ph": ("adc", ("ph",), "analog"),
    "battery": ("adc", ("bat_v",), "analog"),
    "flow": ("pulse", ("water_l",), "pulse"),
    "rain": ("pulse", ("rain_mm",), "pulse"),
}

NODE_FILE = "node.json"
GOOD_FILE = "node.good.json"
REMOTE_FILE = "remote.json"
MAX_FILE = 8192

DEFAULTS = {
    "interval": 300,  # seconds between samples
    "batch": 24,  # samples per message
    "drain": 4,  # extra backlog messages per wake
    "inflight": 4,  # messages awaiting PUBACK at once
    "ack_timeout": 10,  # seconds to wait for PUBACKs in one wake
    "sleep": "auto",  # auto | deep | light (boards; the unix port always waits in a poll)
    "wdt": 0,  # watchdog timeout in seconds, 0 = off
    "ntp": "",  # NTP server; "" = broker host
}
LIMITS = {
    "interval": (1, 86400),
    "batch": (1, 200),
    "drain": (0, 100),
    "inflight": (1, 16),
    "ack_timeout": (1, 120),
    "wdt": (0, 3600),
}
BROKER_DEFAULTS = {"port": 1883, "keepalive": 60, "backoff_base": 2, "backoff_cap": 300}
SPOOL_DEFAULTS = {"max_samples": 2000, "seg_bytes": 8192}
ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"
METRIC_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def valid_id(s, chars=ID_CHARS):
    if not isinstance(s, str) or not 0 < len(s) <= 32:
        return False
    for c in s:
        if c not in chars:
            return False
    return True


class Report:
    # Collects config errors; each becomes one log line.
    def __init__(self, log, file):
        self.log = log
        self.file = file
        self.errors = 0

    def bad(self, field, reason, using=None):
        self.errors += 1
        if self.log:
            self.log("config_invalid", "error", file=self.file, field=field, reason=reason, using=using)


def _int_field(src, dst, key, lo, hi, rep, prefix=""):
    if key not in src:
        return
    v = src[key]
    if is_int(v) and lo <= v <= hi:
        dst[key] = v
    else:
        rep.bad(prefix + key, "must be an integer in %d..%d, got %r" % (lo, hi, v), dst.get(key))


def parse_rom(text):
    # "28ff4c6a01160400"-style ROM code -> 8 bytes, or None if not a DS18B20's (family, CRC).
    from agrinode.crc import crc8_maxim

    try:
        rom = bytes(int(text[i : i + 2], 16) for i in range(0, 16, 2)) if len(text) == 16 else b""
    except (TypeError, ValueError):
        return None
    return rom if len(rom) == 8 and rom[0] == 0x28 and crc8_maxim(rom) == 0 else None


def check_sensor(s, i, rep):
    # Returns a normalised sensor dict, or None (reported) if it cannot be used.
    where = "sensors[%d]" % i
    if not isinstance(s, dict):
        rep.bad(where, "must be an object")
        return None
    t = s.get("type")
    if t not in TYPES:
        rep.bad(where + ".type", "unknown sensor type %r (known: %s)" % (t, " ".join(sorted(TYPES))))
        return None
    bus, outputs, mod = TYPES[t]
    out = {"type": t, "bus": bus, "mod": mod, "cal": {}}
    metrics = s.get("metrics", list(outputs))
    if (
        not isinstance(metrics, list)
        or len(metrics) != len(outputs)
        or not all(valid_id(m, METRIC_CHARS) for m in metrics)
    ):
        rep.bad(where + ".metrics", "must list %d metric name(s) like %s" % (len(outputs), list(outputs)))
        return None
    out["metrics"] = metrics
    cal = s.get("cal", {})
    if not isinstance(cal, dict) or not all(is_num(cal[k]) for k in cal):
        rep.bad(where + ".cal", "must be an object of numbers")
        return None
    out["cal"] = cal
    if bus == "i2c":
        i2c = s.get("i2c", {})
        if not isinstance(i2c, dict) or not all(is_int(i2c[k]) and i2c[k] >= 0 for k in i2c):
            rep.bad(where + ".i2c", "must be an object {id, scl, sda, freq} of non-negative integers")
            return None
        out["i2c"] = i2c
        addr = s.get("addr", {"scd4x": 0x62}.get(t, 0x44))
        if not is_int(addr) or not 0x08 <= addr <= 0x77:
            rep.bad(where + ".addr", "must be a 7-bit I2C address (8..119), got %r" % (addr,))
            return None
        out["addr"] = addr
    else:
        pin = s.get("pin")
        if not (is_int(pin) and 0 <= pin <= 255) and not (isinstance(pin, str) and 0 < len(pin) <= 8):
            rep.bad(where + ".pin", "must be a GPIO number or pin name, got %r" % (pin,))
            return None
        out["pin"] = pin
        if bus == "adc":
            vref = s.get("vref", 3.3)
            if not is_num(vref) or not 0.5 <= vref <= 6:
                rep.bad(where + ".vref", "must be the ADC full-scale voltage (0.5..6), got %r" % (vref,))
                return None
            out["vref"] = vref
        if t == "ds18b20" and "rom" in s:
            rom = parse_rom(s["rom"])
            if rom is None:
                rep.bad(where + ".rom", "must be 16 hex digits of a DS18B20 (family 28) with a valid CRC")
                return None
            out["rom"] = rom
    return out


def check_sensors(v, rep):
    if not isinstance(v, list) or len(v) > 16:
        rep.bad("sensors", "must be a list of at most 16 sensor objects", "[]")
        return []
    out = []
    for i in range(len(v)):
        s = check_sensor(v[i], i, rep)
        if s is not None:
            out.append(s)
    return out


def apply_common(src, cfg, rep):
    # Fields that both node.json and the remote config may set.
    for k in LIMITS:
        lo, hi = LIMITS[k]
        _int_field(src, cfg, k, lo, hi, rep)
    if "sensors" in src:
        cfg["sensors"] = check_sensors(src["sensors"], rep)
    cal = src.get("cal")
    if cal is not None:
        # {"soil_vwc": {"dry": 2.5, ...}}: calibration keyed by a sensor's first metric.
        if not isinstance(cal, dict):
            rep.bad("cal", "must be an object keyed by metric name")
        else:
            for s in cfg["sensors"]:
                c = cal.get(s["metrics"][0])
                if c is None:
                    continue
                if isinstance(c, dict) and all(is_num(c[k]) for k in c):
                    s["cal"] = c
                else:
                    rep.bad("cal." + s["metrics"][0], "must be an object of numbers")


def check(obj, rep):
    # Full node.json -> normalised config. Never raises on bad values.
    cfg = dict(DEFAULTS)
    cfg["sensors"] = []
    cfg["broker"] = None
    cfg["farm"] = cfg["node"] = None
    if not isinstance(obj, dict):
        rep.bad("(file)", "must be a JSON object")
        return cfg
    if obj.get("v", 1) != 1:
        rep.bad("v", "unsupported config version %r (expected 1)" % (obj.get("v"),))
    for k in ("farm", "node"):
        if valid_id(obj.get(k)) and not (k == "node" and obj[k] == "gw"):
            cfg[k] = obj[k]
        else:
            rep.bad(k, "must be an id of 1-32 characters a-z 0-9 -, got %r" % (obj.get(k),), "offline")
    cfg["broker"] = check_broker(obj.get("broker"), rep)
    key = obj.get("ota_key")
    cfg["ota_key"] = None
    if key is not None:
        if isinstance(key, str) and len(key) == 64 and not [c for c in key if c not in "0123456789abcdef"]:
            cfg["ota_key"] = key
        else:
            rep.bad("ota_key", "must be 64 lowercase hex digits (the node's update key)", "none: updates refused")
    apply_common(obj, cfg, rep)
    if obj.get("sleep", "auto") in ("auto", "deep", "light"):
        cfg["sleep"] = obj.get("sleep", "auto")
    else:
        rep.bad("sleep", "must be auto, deep or light", "auto")
    ntp = obj.get("ntp", "")
    if isinstance(ntp, str) and len(ntp) <= 64:
        cfg["ntp"] = ntp
    else:
        rep.bad("ntp", "must be a host name", "broker host")
    sp = dict(SPOOL_DEFAULTS)
    src = obj.get("spool", {})
    if isinstance(src, dict):
        _int_field(src, sp, "max_samples", 10, 100000, rep, "spool.")
        _int_field(src, sp, "seg_bytes", 512, 65536, rep, "spool.")
    else:
        rep.bad("spool", "must be an object", "defaults")
    cfg["spool"] = sp
    wifi = obj.get("wifi")
    if wifi is not None and not (isinstance(wifi, dict) and isinstance(wifi.get("ssid"), str)):
        rep.bad("wifi", "must be an object {ssid, password}", "no wifi")
        wifi = None
    cfg["wifi"] = wifi
    return cfg


def check_broker(b, rep):
    if not isinstance(b, dict):
        rep.bad("broker", "must be an object {host, port, user, password}", "offline")
        return None
    out = dict(BROKER_DEFAULTS)
    host = b.get("host")
    if not isinstance(host, str) or not 0 < len(host) <= 253 or " " in host:
        rep.bad("broker.host", "must be a host name or IP address, got %r" % (host,), "offline")
        return None
    out["host"] = host
    for k in ("user", "password"):
        v = b.get(k)
        if v is not None and not (isinstance(v, str) and len(v) <= 256):
            rep.bad("broker." + k, "must be a string", "none")
            v = None
        out[k] = v
    _int_field(b, out, "port", 1, 65535, rep, "broker.")
    _int_field(b, out, "keepalive", 10, 3600, rep, "broker.")
    _int_field(b, out, "backoff_base", 1, 3600, rep, "broker.")
    _int_field(b, out, "backoff_cap", 1, 86400, rep, "broker.")
    return out


def _read_json(path, rep, what):
    raw = fsutil.read_atomic(path)
    if raw is None:
        return None, None
    if len(raw) > MAX_FILE:
        rep.bad("(file)", "%s is %d bytes, limit %d" % (what, len(raw), MAX_FILE))
        return None, raw
    try:
        # MicroPython's parser accepts a truncated object (a half-written file), hence the check.
        if raw.strip()[-1:] != b"}":
            raise ValueError
        return json.loads(raw), raw
    except ValueError:
        rep.bad("(file)", "%s is not valid JSON" % what)
        return None, raw


def load(log=None):
    # -> (config dict, number of errors reported)
    rep = Report(log, NODE_FILE)
    obj, raw = _read_json(NODE_FILE, rep, NODE_FILE)
    if obj is None:
        if raw is None:
            rep.bad("(file)", "%s is missing" % NODE_FILE)
        good, _ = _read_json(GOOD_FILE, Report(log, GOOD_FILE), GOOD_FILE)
        if good is not None:
            if log:
                log("config_fallback", "warning", using=GOOD_FILE)
            obj = good
        elif log:
            log("config_fallback", "warning", using="defaults (sampling to spool, no network)")
    cfg = check(obj if obj is not None else {}, rep if obj is not None else Report(None, ""))
    if obj is not None and raw is not None and rep.errors == 0:
        # Kept as the last good copy; the old one is read (a second buffer) only if sizes match.
        if fsutil.size(GOOD_FILE) != len(raw) or fsutil.read_atomic(GOOD_FILE) != raw:
            fsutil.write_atomic(GOOD_FILE, raw)
    obj = raw = None  # (the parsed file and its bytes are not needed past here)
    remote = fsutil.read_atomic(REMOTE_FILE)
    if remote:
        apply_remote(cfg, remote, log)
    return cfg, rep.errors


def apply_remote(cfg, raw, log=None):
    # Apply a retained config message (bytes) to cfg. Returns True only if every field in it is
    # valid: a message with any error is refused as a whole (the caller keeps the old config).
    rep = Report(log, "config message")
    try:
        if raw.strip()[-1:] != b"}":
            raise ValueError
        obj = json.loads(raw)
    except ValueError:
        rep.bad("(message)", "not valid JSON")
        return False
    if not isinstance(obj, dict):
        rep.bad("(message)", "must be a JSON object")
        return False
    apply_common(obj, cfg, rep)
    return rep.errors == 0
