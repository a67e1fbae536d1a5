# SNTP (RFC 4330) client: one request, one reply, with a timeout. Loaded only to sync.
import socket
import struct

NTP_DELTA = 2208988800  # 1900 -> 1970


def query(host, port=123, timeout=2):
    # Unix time (float) from the server, or None.
    try:
        addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return None
    try:
        s.settimeout(timeout)
        q = bytearray(48)
        q[0] = 0x23  # LI 0, version 4, mode 3 (client)
        s.sendto(q, addr)
        r = s.recv(48)
    except OSError:
        return None
    finally:
        s.close()
    if len(r) < 48 or r[0] & 7 != 4 or r[1] == 0:  # not a server reply, or kiss-of-death
        return None
    secs, frac = struct.unpack("!II", r[40:48])
    t = secs - NTP_DELTA + frac / 4294967296
    return t if t >= 1735689600 else None


def set_rtc(t):
    try:
        import machine
        import time

        tm = time.gmtime(int(t))
        machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))
        return True
    except (ImportError, AttributeError, OSError):
        return False
