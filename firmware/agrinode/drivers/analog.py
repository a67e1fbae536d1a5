# Analog sensors on an ADC: capacitive soil moisture, leaf wetness, NH3 transmitter, dissolved
# oxygen, pH and battery voltage. The driver takes an ADC with read_u16() (0..65535 over 0..vref)
# and converts linearly through two calibration points (v1 -> x1, v2 -> x2), per node (config
# "cal"), so a probe swap needs no code change:
#   soil     {"dry": V in air-dry soil, "wet": V saturated, "sat": VWC % at saturation}
#   leaf     {"dry": V, "wet": V}  -> 0..100 %
#   nh3      {"v1", "x1", "v2", "x2"} ppm; default 0.4 V = 0 ppm, 2.0 V = 100 ppm (live zero)
#   do       {"v1", "x1", "v2", "x2"} mg/L; default zero solution 0 V, air-saturated 1.6 V = 8.26
#   ph       {"v1", "x1", "v2", "x2"}; default buffers pH 7 = 1.50 V, pH 4 = 2.03 V
#   battery  {"div": (R1 + R2) / R2 of the divider}
from agrinode.drivers import SensorError

# kind: (v1, x1, v2, x2 defaults, lowest plausible fraction of vref, output range lo, hi), all in
# thousandths: small integers, not floats (a float is a heap object on a 32-bit board).
# Below the lower rail the sensor is open or its loop broken; the NH3 transmitter's live zero
# raises it, and 0 V is a real (anoxic) dissolved-oxygen reading, so there it is off.
KINDS = {
    "soil": (2600, 0, 1200, 100000, 10, 0, 100000),
    "leaf": (500, 0, 2500, 100000, 10, 0, 100000),
    "nh3": (400, 0, 2000, 100000, 60, 0, 500000),
    "do": (0, 0, 1600, 8260, -1000, 0, 25000),
    "ph": (1500, 7000, 2030, 4000, 10, 0, 14000),
    "battery": (0, 0, 1000, 2000, 10, 0, 15000),
}


def calibrate(kind, cal):
    # Per-node calibration -> (v1, x1, v2, x2); ValueError if unusable.
    v1, x1, v2, x2 = [x / 1000 for x in KINDS[kind][:4]]
    g = cal.get
    if kind == "battery":
        x2 = g("div", 2.0)
        if x2 < 1:
            raise ValueError("cal.div must be >= 1")
    elif kind in ("soil", "leaf"):
        v1, v2, x2 = g("dry", v1), g("wet", v2), g("sat", x2)
    else:
        v1, x1, v2, x2 = g("v1", v1), g("x1", x1), g("v2", v2), g("x2", x2)
    if v1 == v2:
        raise ValueError("calibration points must have different voltages")
    return v1, x1, v2, x2


class Analog:
    def __init__(self, adc, kind, cal=None, vref=3.3, n=8):
        self.adc = adc
        self.vref = vref
        self.n = n
        k = KINDS[kind]
        self.rail, self.lo, self.hi = k[4] / 1000, k[5] / 1000, k[6] / 1000
        self.cal = calibrate(kind, cal or {})

    def volts(self):
        s = 0
        for _ in range(self.n):
            s += self.adc.read_u16()
        v = s / self.n * self.vref / 65535
        if v < self.rail * self.vref or v > 0.99 * self.vref:
            raise SensorError("adc at rail (%.3f V): sensor open or shorted" % v)
        return v

    def measure(self):
        v1, x1, v2, x2 = self.cal
        x = x1 + (self.volts() - v1) * (x2 - x1) / (v2 - v1)
        return (self.lo if x < self.lo else self.hi if x > self.hi else x,)
