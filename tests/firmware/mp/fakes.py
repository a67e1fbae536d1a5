# Fake buses for driver tests on the unix port: they answer with the exact bytes a datasheet
# gives and record what the driver sent.
import errno


class FakeI2C:
    def __init__(self, addr, answers):
        # answers: {command bytes: response bytes}; the response to the last command is read.
        self.addr = addr
        self.answers = answers
        self.writes = []
        self._last = None

    def writeto(self, addr, buf):
        if addr != self.addr:
            raise OSError(errno.ENODEV)
        self.writes.append(bytes(buf))
        self._last = bytes(buf)
        return 1

    def readfrom_into(self, addr, buf):
        if addr != self.addr:
            raise OSError(errno.ENODEV)
        data = self.answers[self._last]
        assert len(data) == len(buf), "driver read %d bytes, chip sends %d" % (len(buf), len(data))
        for i in range(len(buf)):
            buf[i] = data[i]


class FakeOneWire:
    def __init__(self, scratchpad, present=True):
        self.scratchpad = scratchpad
        self.present = present
        self.log = []

    def reset(self, required=False):
        self.log.append("reset")
        return self.present

    def writebyte(self, b):
        self.log.append(b)

    def select_rom(self, rom):
        self.log.append(("rom", bytes(rom)))

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = self.scratchpad[i]


class FakeADC:
    def __init__(self, *values):
        self.values = list(values)
        self.i = 0

    def read_u16(self):
        v = self.values[self.i % len(self.values)]
        self.i += 1
        return v


class FakePin:
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self):
        self.handler = None
        self.trigger = None

    def irq(self, handler=None, trigger=None):
        self.handler = handler
        self.trigger = trigger

    def pulse(self, n=1):
        for _ in range(n):
            self.handler(self)


def no_delay(ms):
    pass


def approx(a, b, tol=1e-6):
    assert abs(a - b) <= tol, "%r != %r (tol %r)" % (a, b, tol)
