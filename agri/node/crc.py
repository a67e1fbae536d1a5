"""CRC-8 of the 1-Wire bus (Dallas/Maxim), to check DS18B20 ROM codes given in node configs."""

from __future__ import annotations


def crc8_maxim(data: bytes) -> int:
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc
