# Sensor drivers. Each takes its bus (I2C, OneWire, ADC, Pin) in the constructor and never
# creates it, so the same code runs on a board and against a fake bus on the unix port.
# measure() returns a tuple of physical values in the order of the type's OUTPUTS.


class SensorError(Exception):
    # A device condition (bad CRC, no presence pulse, open circuit): the reading is skipped.
    pass


# type -> (bus kind, default metric names of measure()'s outputs, module)
TYPES = {
    "sht3x": ("i2c", ("air_t", "air_rh"), "sht"),
    "sht4x": ("i2c", ("air_t", "air_rh"), "sht"),
    "scd4x": ("i2c", ("co2_ppm",), "scd4x"),
    "ds18b20": ("ow", ("soil_t",), "ds18b20"),
    "soil": ("adc", ("soil_vwc",), "analog"),
    "leaf": ("adc", ("leaf_wet",), "analog"),
    "nh3": ("adc", ("nh3_ppm",), "analog"),
    "do": ("adc", ("do_mgl",), "analog"),
    "ph": ("adc", ("ph",), "analog"),
    "battery": ("adc", ("bat_v",), "analog"),
    "flow": ("pulse", ("water_l",), "pulse"),
    "rain": ("pulse", ("rain_mm",), "pulse"),
}
