# Analog sensors on an ADC: capacitive soil moisture, leaf wetness, NH3 transmitter, dissolved
# oxygen, pH and battery voltage. The driver takes an ADC with read_u16() (0..65535 over 0..vref).
# Calibration is per node (config "cal"), so a probe swap needs no code change.


from agrinode.drivers import SensorError


def clamp(x, lo, hi):
    return lo if x < lo else hi if x > hi else x


class Analog:
    # Readings outside [lo_rail, hi_rail] * vref mean an open or shorted sensor.
    lo_rail = 0.01
    hi_rail = 0.99

    def __init__(self, adc, cal=None, vref=3.3, n=8):
        self.adc = adc
        self.vref = vref
        self.n = n
        self.cal = self.check(cal or {})

    def check(self, cal):
        return cal

    def volts(self):
        s = 0
        for _ in range(self.n):
            s += self.adc.read_u16()
        v = s / self.n * self.vref / 65535
        if v < self.lo_rail * self.vref or v > self.hi_rail * self.vref:
            raise SensorError("adc at rail (%.3f V): sensor open or shorted" % v)
        return v

    def measure(self):
        return (self.convert(self.volts()),)

    def convert(self, v):
        return v


def _two_point(cal, v1, x1, v2, x2):
    out = {"v1": v1, "x1": x1, "v2": v2, "x2": x2}
    out.update(cal)
    for k in ("v1", "x1", "v2", "x2"):
        if not isinstance(out[k], (int, float)):
            raise ValueError("cal.%s must be a number" % k)
    if out["v1"] == out["v2"]:
        raise ValueError("cal.v1 and cal.v2 must differ")
    return out


class TwoPoint(Analog):
    # Linear through two calibration points (v1 -> x1, v2 -> x2), clamped to [lo, hi].
    default = (0.0, 0.0, 3.0, 100.0)
    lo = 0.0
    hi = 100.0

    def check(self, cal):
        return _two_point(cal, *self.default)

    def convert(self, v):
        c = self.cal
        x = c["x1"] + (v - c["v1"]) * (c["x2"] - c["x1"]) / (c["v2"] - c["v1"])
        return clamp(x, self.lo, self.hi)


class Soil(TwoPoint):
    # Capacitive probe: voltage falls as the soil gets wetter. dry/wet are the probe's voltages
    # in air-dry and saturated soil; sat is the volumetric water content (%) at saturation.
    def check(self, cal):
        out = {"dry": 2.6, "wet": 1.2, "sat": 100.0}
        out.update(cal)
        if out["dry"] == out["wet"]:
            raise ValueError("cal.dry and cal.wet must differ")
        return _two_point({}, out["dry"], 0.0, out["wet"], out["sat"])


class Leaf(Soil):
    # Resistive/capacitive grid: 0 % dry, 100 % fully wet.
    def check(self, cal):
        out = {"dry": 0.5, "wet": 2.5}
        out.update(cal)
        if out["dry"] == out["wet"]:
            raise ValueError("cal.dry and cal.wet must differ")
        return _two_point({}, out["dry"], 0.0, out["wet"], 100.0)


class NH3(TwoPoint):
    # Electrochemical NH3 transmitter with a live zero (0.4 V = 0 ppm, 2.0 V = 100 ppm by
    # default): below the live zero the loop is broken, so the lower rail is raised.
    default = (0.4, 0.0, 2.0, 100.0)
    lo_rail = 0.06
    hi = 500.0


class DO(TwoPoint):
    # Galvanic dissolved-oxygen probe: zero solution and air-saturated water (mg/L at the
    # calibration temperature). 0 V is a legitimate anoxic reading, so no lower rail.
    default = (0.0, 0.0, 1.6, 8.26)
    lo_rail = -1.0
    hi = 25.0


class PH(TwoPoint):
    # pH electrode amplifier, two buffers (pH 7 and pH 4 by default).
    default = (1.5, 7.0, 2.03, 4.0)
    hi = 14.0


class Battery(Analog):
    # Battery through a resistor divider (div = (R1 + R2) / R2).
    def check(self, cal):
        out = {"div": 2.0}
        out.update(cal)
        if not isinstance(out["div"], (int, float)) or out["div"] < 1:
            raise ValueError("cal.div must be a number >= 1")
        return out

    def convert(self, v):
        return v * self.cal["div"]


CLASSES = {"soil": Soil, "leaf": Leaf, "nh3": NH3, "do": DO, "ph": PH, "battery": Battery}
