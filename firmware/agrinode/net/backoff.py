# Capped exponential backoff with jitter for reconnects: after the n-th consecutive failure wait
# between half and all of min(cap, base * 2^(n-1)) seconds, so a farm's nodes that lost the
# broker together do not reconnect in lockstep, and the wait never drops to zero.


def delay(failures, base, cap, rand):
    n = failures - 1
    d = cap if n >= 30 else min(cap, base * (1 << n))
    return d / 2 + rand() * d / 2
