# Wall-clock time for sample stamps (Unix seconds, UTC).
#
# Sources, best first: NTP (agrinode.ntp; the configured server, by default the broker host,
# where the farm gateway or central server answers), then the RTC if it holds a plausible date
# (it keeps running through deep sleep on most boards; on the unix port it is the host clock),
# then the last time this node knew (saved in the spool state) plus the time since boot. The
# fallback keeps stamps increasing and near the truth after a brownout reset the RTC; it is
# logged so the platform knows the node was unsynced.
import time

# Ports whose time() counts from 2000 need this offset to reach Unix time.
EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0
MIN_VALID = 1735689600  # 2025-01-01: an RTC reading earlier than this was never set


class Clock:
    fast = False

    def __init__(self, last_known=0, log=None):
        self.offset = 0
        self.last_known = last_known
        self._boot_ticks = time.ticks_ms()
        self.source = "rtc" if time.time() + EPOCH_OFFSET >= MIN_VALID else "fallback"
        if self.source == "fallback" and log:
            log("clock_unsynced", "warning", using="last known time + uptime", last=last_known)

    def now(self):
        t = time.time() + EPOCH_OFFSET + self.offset
        if t < MIN_VALID:
            t = max(self.last_known, MIN_VALID) + time.ticks_diff(time.ticks_ms(), self._boot_ticks) // 1000
        return int(t)

    def ticks_ms(self):
        return time.ticks_ms()

    def sleep_ms(self, ms):
        time.sleep_ms(ms)

    def sync(self, host, log):
        # NTP; on a board the RTC is set, so the time survives deep sleep.
        from agrinode.ntp import query, set_rtc

        t = query(host)
        if t is None:
            return False
        if set_rtc(t - EPOCH_OFFSET):
            self.offset = 0
        else:
            self.offset = t - time.time() - EPOCH_OFFSET  # unix port: cannot set the host clock
        if self.source != "ntp":
            log("clock_synced", server=host, step_s=int(self.offset))
        self.source = "ntp"
        return True
