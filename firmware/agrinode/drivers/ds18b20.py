# Maxim DS18B20 temperature probe on a 1-Wire bus (soil or water temperature).
# Uses MicroPython's onewire.OneWire API: reset(), writebyte(), readinto(), select_rom().
import time

from micropython import const

from agrinode.crc import crc8_maxim
from agrinode.drivers import SensorError

_SKIP_ROM = const(0xCC)
_CONVERT_T = const(0x44)
_READ_SCRATCHPAD = const(0xBE)
_CONVERT_MS = const(750)  # 12-bit resolution
_POWER_ON_RAW = const(0x0550)  # 85.0 degC: the scratchpad's reset value, not a measurement


class DS18B20:
    def __init__(self, ow, rom=None, delay=time.sleep_ms):
        self.ow = ow
        self.rom = rom
        self.delay = delay
        self._buf = bytearray(9)

    def _select(self):
        if not self.ow.reset():
            raise SensorError("no presence pulse (probe missing or wire cut)")
        if self.rom is None:
            self.ow.writebyte(_SKIP_ROM)
        else:
            self.ow.select_rom(self.rom)

    def measure(self):
        self._select()
        self.ow.writebyte(_CONVERT_T)
        self.delay(_CONVERT_MS)
        self._select()
        self.ow.writebyte(_READ_SCRATCHPAD)
        b = self._buf
        self.ow.readinto(b)
        if b[4] == 0 and b[7] == 0 and b[0] == 0 and b[1] == 0:
            # All-zero frames pass the CRC; a real scratchpad has config and reserved bits set.
            raise SensorError("bus stuck low")
        if crc8_maxim(b) != 0:
            raise SensorError("scratchpad crc mismatch")
        raw = b[0] | b[1] << 8
        if raw == _POWER_ON_RAW:
            raise SensorError("power-on value 85.0: conversion did not run")
        if raw & 0x8000:
            raw -= 0x10000
        return (raw / 16,)
