# Sensirion SHT3x and SHT4x air temperature + relative humidity (I2C), single-shot mode.
# Both answer 6 bytes: T msb, T lsb, CRC, RH msb, RH lsb, CRC (CRC-8 0x31, init 0xFF).
import time

from micropython import const

from agrinode.crc import check_words
from agrinode.drivers import SensorError

_SHT3X_MEAS_HIGH = const(0x2400)  # single shot, high repeatability, no clock stretching
_SHT3X_WAIT_MS = const(16)  # tMEAS max 15.5 ms
_SHT4X_MEAS_HIGH = const(0xFD)  # high precision
_SHT4X_WAIT_MS = const(9)  # max 8.3 ms


class SHT3x:
    def __init__(self, i2c, addr=0x44, delay=time.sleep_ms):
        self.i2c = i2c
        self.addr = addr
        self.delay = delay
        self._cmd = bytearray(2)
        self._buf = bytearray(6)

    def _read(self):
        b = self._buf
        self.i2c.readfrom_into(self.addr, b)
        bad = check_words(b, 2)
        if bad is not None:
            raise SensorError("crc mismatch in word %d" % bad)
        return b[0] << 8 | b[1], b[3] << 8 | b[4]

    def measure(self):
        c = self._cmd
        c[0] = _SHT3X_MEAS_HIGH >> 8
        c[1] = _SHT3X_MEAS_HIGH & 0xFF
        self.i2c.writeto(self.addr, c)
        self.delay(_SHT3X_WAIT_MS)
        st, srh = self._read()
        return -45 + 175 * st / 65535, 100 * srh / 65535


class SHT4x(SHT3x):
    def measure(self):
        c = self._cmd
        c[0] = _SHT4X_MEAS_HIGH
        self.i2c.writeto(self.addr, memoryview(c)[:1])
        self.delay(_SHT4X_WAIT_MS)
        st, srh = self._read()
        rh = -6 + 125 * srh / 65535
        # The datasheet's conversion can leave [0, 100] slightly; it says to crop.
        return -45 + 175 * st / 65535, min(100.0, max(0.0, rh))
