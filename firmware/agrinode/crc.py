# CRC-8 checks of the sensor buses. Pure functions; no allocation per byte.


def crc8_sensirion(buf, start=0, end=None):
    # Sensirion SHT3x/SHT4x/SCD4x: polynomial 0x31 (x^8+x^5+x^4+1), init 0xFF, no reflection.
    # Datasheet check value: crc8_sensirion(b"\xbe\xef") == 0x92.
    crc = 0xFF
    for i in range(start, len(buf) if end is None else end):
        crc ^= buf[i]
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc8_maxim(buf, start=0, end=None):
    # Dallas/Maxim 1-Wire (DS18B20 ROM and scratchpad): x^8+x^5+x^4+1 reflected (0x8C), init 0.
    # A buffer that ends with its own CRC yields 0.
    crc = 0
    for i in range(start, len(buf) if end is None else end):
        b = buf[i]
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def check_words(buf, nwords):
    # Sensirion frames: [msb, lsb, crc] per 16-bit word. Returns None if all CRCs match,
    # else the index of the first bad word (the caller raises with that detail).
    for w in range(nwords):
        i = w * 3
        if crc8_sensirion(buf, i, i + 2) != buf[i + 2]:
            return w
    return None
