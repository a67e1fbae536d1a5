# Hardware abstraction: the buses, watchdog, sleep and radio of a real board (machine module).
# On the unix port agrisim.SimHal (firmware/unix/agrisim.py, emulator only) provides the same methods with simulated chips
# (agrinode.app picks one).
# Every method takes the sensor's config dict, so a simulated bus knows what it stands for.
import time


class Hal:
    sim = False

    def __init__(self, cfg, log):
        self.cfg = cfg
        self.log = log
        self._i2c = {}
        self._wlan = None

    # --- buses ----------------------------------------------------------------------------------

    def i2c(self, s):
        from machine import I2C, Pin

        spec = s.get("i2c", {})
        key = (spec.get("id", 0), spec.get("scl"), spec.get("sda"))
        bus = self._i2c.get(key)
        if bus is None:
            freq = spec.get("freq", 100000)
            if "scl" in spec and "sda" in spec:
                bus = I2C(key[0], scl=Pin(spec["scl"]), sda=Pin(spec["sda"]), freq=freq)
            else:
                bus = I2C(key[0], freq=freq)
            self._i2c[key] = bus
        return bus

    def ow(self, s):
        import onewire
        from machine import Pin

        return onewire.OneWire(Pin(s["pin"]))

    def adc(self, s):
        from machine import ADC, Pin

        a = ADC(Pin(s["pin"]))
        try:
            a.atten(ADC.ATTN_11DB)  # ESP32: full 0..3.3 V range
        except AttributeError:
            pass
        return a

    def pulse(self, s):
        from machine import Pin

        return Pin(s["pin"], Pin.IN, Pin.PULL_UP)

    def clock(self, spool, log):
        from agrinode.clock import Clock

        return Clock(spool.t_last, log)

    def run_options(self):
        return {}

    delay_ms = staticmethod(time.sleep_ms)
    irq_ticks_ms = staticmethod(time.ticks_ms)

    def before_sample(self, t, cycle):
        pass

    # --- radio ----------------------------------------------------------------------------------

    def link_up(self, timeout_ms=15000):
        # Bring up Wi-Fi if configured; True when the node can reach the network.
        wifi = self.cfg.get("wifi")
        if not wifi:
            return True  # wired, cellular modem in PPP, or a port without network module
        import network

        if self._wlan is None:
            self._wlan = network.WLAN(network.STA_IF)
            self._wlan.active(True)
        if self._wlan.isconnected():
            return True
        self._wlan.connect(wifi["ssid"], wifi.get("password", ""))
        t0 = time.ticks_ms()
        while not self._wlan.isconnected():
            if time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
                return False
            time.sleep_ms(100)
        return True

    def rssi(self):
        try:
            return self._wlan.status("rssi") if self._wlan else None
        except (AttributeError, ValueError, OSError):
            return None

    # --- power ----------------------------------------------------------------------------------

    def wdt(self, seconds):
        from machine import WDT

        return WDT(timeout=seconds * 1000)

    def woke_from_deepsleep(self):
        import machine

        try:
            return machine.reset_cause() == machine.DEEPSLEEP_RESET
        except AttributeError:
            return False

    def can_deepsleep(self):
        import machine

        return hasattr(machine, "deepsleep")

    def deepsleep(self, ms):
        import machine

        machine.deepsleep(ms)

    def reset(self):
        import machine

        machine.reset()
