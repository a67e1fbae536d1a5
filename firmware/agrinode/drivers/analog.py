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

# kind: (v1, x1, v2, x2 defaults, lowest plausible fraction of vref, output range lo, hi).
# Below the lower rail the sensor is open or its loop broken; the NH3 transmitter's live zero
# raises it, and 0 V is a real (anoxic) dissolved-oxygen reading, so there it is off.
KINDS = {
    "soil": ((2.6, 0.0, 1.2, 100.0), 0.01, 0, 100),
    "leaf": ((0.5, 0.0, 2.5, 100.0), 0.01, 0, 100),
    "nh3": ((0.4, 0.0, 2.0, 100.0), 0.06, 0, 500),
    "do": ((0.0, 0.0, 1.6, 8.26), -1, 0, 25),
    "ph": ((1.5, 7.0, 2.03, 4.0), 0.01, 0, 14),
    "battery": ((0.0, 0.0, 1.0, 2.0), 0.01, 0, 15),
}


def calibrate(kind, cal):
    # Per-node calibration -> (v1, x1, v2, x2); ValueError if unusable.
    v1, x1, v2, x2 = KINDS[kind][0]
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
        self.rail, self.lo, self.hi = k[1], k[2], k[3]
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
