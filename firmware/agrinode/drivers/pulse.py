# Pulse counters on a GPIO interrupt: drinking-water flow meter (litres; a YF-S201 gives about
# 450 pulses per litre) and tipping-bucket rain gauge (mm, 0.2 mm per tip; its reed contacts
# bounce, so edges within debounce_ms count once). measure() returns the amount since the
# previous measure().
import time


class PulseCounter:
    def __init__(self, pin, per_pulse, debounce_ms=0, ticks_ms=time.ticks_ms):
        if not isinstance(per_pulse, (int, float)) or per_pulse <= 0:
            raise ValueError("amount per pulse must be a positive number")
        self.per_pulse = per_pulse
        self.debounce_ms = debounce_ms
        self.ticks_ms = ticks_ms
        # The ISR only increments; measure() takes the difference, so no pulse is lost between
        # reading and resetting and no interrupt has to be disabled.
        self.count = 0
        self._taken = 0
        self._last = ticks_ms()
        pin.irq(handler=self._isr, trigger=pin.IRQ_FALLING)

    def _isr(self, _pin):
        if self.debounce_ms:
            now = self.ticks_ms()
            if time.ticks_diff(now, self._last) < self.debounce_ms:
                return
            self._last = now
        self.count += 1

    def measure(self):
        c = self.count
        n = c - self._taken
        self._taken = c
        return (n * self.per_pulse,)
