# Sensor drivers. Each takes its bus (I2C, OneWire, ADC, Pin) in the constructor and never
# creates it, so the same code runs on a board and against a fake bus on the unix port.
# measure() returns a tuple of physical values (the sensor types and their outputs are listed in
# agrinode.config.TYPES).


class SensorError(Exception):
    # A device condition (bad CRC, no presence pulse, open circuit): the reading is skipped.
    pass
