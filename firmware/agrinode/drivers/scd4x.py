# Sensirion SCD4x (SCD40/SCD41) photoacoustic CO2 sensor (I2C), periodic measurement mode.
# Commands are 16-bit; each answered word carries a CRC-8 (0x31, init 0xFF).
import time

from micropython import const

from agrinode.crc import check_words
from agrinode.drivers import SensorError

_START_PERIODIC = const(0x21B1)
_READ_MEASUREMENT = const(0xEC05)  # 3 words: CO2 ppm, T, RH
_DATA_READY = const(0xE4B8)  # 1 word: low 11 bits all 0 -> no new data


class SCD4x:
    def __init__(self, i2c, addr=0x62, delay=time.sleep_ms):
        self.i2c = i2c
        self.addr = addr
        self.delay = delay
        self.started = False
        self._cmd = bytearray(2)
        self._buf = bytearray(9)

    def _command(self, cmd):
        c = self._cmd
        c[0] = cmd >> 8
        c[1] = cmd & 0xFF
        self.i2c.writeto(self.addr, c)

    def _words(self, cmd, n):
        self._command(cmd)
        self.delay(1)  # execution time 1 ms
        b = memoryview(self._buf)[: 3 * n]
        self.i2c.readfrom_into(self.addr, b)
        bad = check_words(b, n)
        if bad is not None:
            raise SensorError("crc mismatch in word %d" % bad)
        return b

    def ready(self):
        b = self._words(_DATA_READY, 1)
        return ((b[0] << 8 | b[1]) & 0x07FF) != 0

    def start(self):
        # The sensor may still be measuring from before a deep sleep, when it refuses start.
        try:
            self._command(_START_PERIODIC)
        except OSError:
            pass
        self.started = True

    def measure(self):
        if not self.ready():
            if not self.started:
                self.start()
            raise SensorError("no measurement ready yet (first one 5 s after start)")
        b = self._words(_READ_MEASUREMENT, 3)
        co2 = b[0] << 8 | b[1]
        if co2 == 0:
            raise SensorError("invalid sample (CO2 = 0)")
        return (float(co2),)

    def measure_all(self):
        # CO2 ppm, temperature, humidity (the latter two are the sensor's own, self-heated).
        self.measure()
        b = self._buf
        return (
            float(b[0] << 8 | b[1]),
            -45 + 175 * (b[3] << 8 | b[4]) / 65536,
            100 * (b[6] << 8 | b[7]) / 65536,
        )
