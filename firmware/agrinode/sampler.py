# Reads every configured sensor once and encodes one sample record for the spool:
#   {"t":1764201600,"m":{"air_t":21.5,"air_rh":65.2}}
# A sensor that fails (NACK, CRC, no presence, open circuit) is left out of the record and
# logged once when it starts failing and once when it recovers. Battery voltage goes to the
# message envelope ("bat"), not to the record.
import math

from agrinode.drivers import SensorError

# Decimals sent per metric (as in the platform's catalog); default 1. "%.1f", not repr(round()):
# binary floats would print 69.90000000000001.
DECIMALS = {"co2_ppm": 0, "do_mgl": 2, "ph": 2, "bat_v": 2, "water_l": 2}
FMT = ("%d", "%.1f", "%.2f")


def make_driver(hal, s):
    t = s["type"]
    mod = __import__("agrinode.drivers." + s["mod"], None, None, [s["mod"]])
    cal = s["cal"]
    bus = s["bus"]
    if bus == "i2c":
        return (mod.SHT4x if t == "sht4x" else mod.SHT3x if t == "sht3x" else mod.SCD4x)(hal.i2c(s), s["addr"], hal.delay_ms)
    if bus == "ow":
        return mod.DS18B20(hal.ow(s), s.get("rom"), hal.delay_ms)
    if bus == "adc":
        return mod.Analog(hal.adc(s), t, cal, s.get("vref", 3.3))
    if t == "flow":
        return mod.PulseCounter(hal.pulse(s), 1 / cal.get("pulses_per_l", 450), 0, hal.irq_ticks_ms)
    return mod.PulseCounter(hal.pulse(s), cal.get("mm_per_tip", 0.2), cal.get("debounce_ms", 50), hal.irq_ticks_ms)


class Sampler:
    def __init__(self, hal, sensors, log):
        self.log = log
        self.items = []  # [driver, metrics, failing]
        for i in range(len(sensors)):
            s = sensors[i]
            try:
                self.items.append([make_driver(hal, s), s["metrics"], False])
            except (ValueError, ZeroDivisionError, OSError, ImportError) as exc:
                log("sensor_init_failed", "error", sensor=i, type=s["type"], err=str(exc))

    def read(self, t):
        # -> (record bytes or None if no sensor answered, battery volts as text or None)
        rec = b""
        bat = None
        for item in self.items:
            drv, metrics, failing = item
            try:
                vals = drv.measure()
            except (SensorError, OSError) as exc:
                if not failing:
                    self.log("sensor_failed", "warning", metric=metrics[0], err=str(exc) or repr(exc))
                    item[2] = True
                continue
            if failing:
                self.log("sensor_recovered", metric=metrics[0])
                item[2] = False
            for k in range(len(metrics)):
                name = metrics[k]
                v = vals[k]
                if not math.isfinite(v):
                    continue
                d = DECIMALS.get(name, 1)
                txt = FMT[d] % (round(v) if d == 0 else v)
                if name == "bat_v":
                    bat = txt
                else:
                    rec += b'%s"%s":%s' % (b"," if rec else b"", name, txt)
        if not rec:
            return None, bat
        return b'{"t":%d,"m":{%s}}' % (t, rec), bat
