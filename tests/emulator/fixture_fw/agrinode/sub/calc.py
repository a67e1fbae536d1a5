from micropython import const

_FACTOR = const(2)


def double(x):
    return _FACTOR * x
