# Driver tests on the MicroPython unix port: each fake bus answers with the datasheet's bytes.
from fakes import FakeADC, FakeI2C, FakeOneWire, FakePin, approx, no_delay

from agrinode.crc import crc8_maxim, crc8_sensirion
from agrinode.drivers import SensorError


def raises(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type as exc:
        return exc
    raise AssertionError("%s not raised" % exc_type.__name__)


def test_crc_check_values():
    assert crc8_sensirion(b"\xbe\xef") == 0x92  # Sensirion datasheets' example
    assert crc8_maxim(b"\x02\x1c\xb8\x01\x00\x00\x00") == 0xA2  # Maxim AN27 example ROM
    assert crc8_maxim(b"\x02\x1c\xb8\x01\x00\x00\x00\xa2") == 0


def test_sht3x_single_shot():
    from agrinode.drivers.sht import SHT3x

    bus = FakeI2C(0x44, {b"\x24\x00": b"\x66\x66\x93\x80\x00\xa2"})
    t, rh = SHT3x(bus, delay=no_delay).measure()
    assert bus.writes == [b"\x24\x00"]
    approx(t, -45 + 175 * 0x6666 / 65535)
    approx(t, 25.0, 0.01)
    approx(rh, 50.0, 0.01)


def test_sht3x_bad_crc_and_nack():
    from agrinode.drivers.sht import SHT3x

    bus = FakeI2C(0x44, {b"\x24\x00": b"\x66\x66\x93\x80\x00\xa3"})
    exc = raises(SensorError, SHT3x(bus, delay=no_delay).measure)
    assert "word 1" in str(exc)
    raises(OSError, SHT3x(bus, addr=0x45, delay=no_delay).measure)


def test_sht4x_high_precision():
    from agrinode.drivers.sht import SHT4x

    bus = FakeI2C(0x44, {b"\xfd": b"\x64\x8b\xc7\x80\x00\xa2"})
    t, rh = SHT4x(bus, delay=no_delay).measure()
    assert bus.writes == [b"\xfd"]
    approx(t, -45 + 175 * 0x648B / 65535)
    approx(rh, -6 + 125 * 0x8000 / 65535)
    # RH below 0 from the conversion formula is cropped, as the datasheet says.
    bus = FakeI2C(0x44, {b"\xfd": b"\x64\x8b\xc7\x00\x00\x81"})
    assert SHT4x(bus, delay=no_delay).measure()[1] == 0.0


def test_scd4x_start_then_read():
    from agrinode.drivers.scd4x import SCD4x

    answers = {b"\xe4\xb8": b"\x80\x00\xa2"}  # data ready: low 11 bits 0 -> not ready
    bus = FakeI2C(0x62, answers)
    drv = SCD4x(bus, delay=no_delay)
    raises(SensorError, drv.measure)
    assert bus.writes == [b"\xe4\xb8", b"\x21\xb1"]  # not ready, so it starts periodic mode
    answers[b"\xe4\xb8"] = b"\x80\x06\x04"
    # Datasheet example: 500 ppm, 25 degC, 37 %RH.
    answers[b"\xec\x05"] = b"\x01\xf4\x33\x66\x67\xa2\x5e\xb9\x3c"
    assert drv.measure() == (500.0,)
    co2, t, rh = drv.measure_all()
    assert co2 == 500.0
    approx(t, 25.0, 0.01)
    approx(rh, 37.0, 0.01)
    assert bus.writes[2:4] == [b"\xe4\xb8", b"\xec\x05"]


def test_scd4x_crc_error():
    from agrinode.drivers.scd4x import SCD4x

    bus = FakeI2C(0x62, {b"\xe4\xb8": b"\x80\x06\x04", b"\xec\x05": b"\x01\xf4\x34\x66\x67\xa2\x5e\xb9\x3c"})
    exc = raises(SensorError, SCD4x(bus, delay=no_delay).measure)
    assert "word 0" in str(exc)


def test_ds18b20_datasheet_values():
    from agrinode.drivers.ds18b20 import DS18B20

    ow = FakeOneWire(b"\x91\x01\x4b\x46\x7f\xff\x0c\x10\x70")  # +25.0625 degC
    assert DS18B20(ow, delay=no_delay).measure() == (25.0625,)
    assert ow.log == ["reset", 0xCC, 0x44, "reset", 0xCC, 0xBE]
    ow = FakeOneWire(b"\x5e\xff\x4b\x46\x7f\xff\x02\x10\xb6")  # -10.125 degC
    assert DS18B20(ow, delay=no_delay).measure() == (-10.125,)


def test_ds18b20_faults():
    from agrinode.drivers.ds18b20 import DS18B20

    raises(SensorError, DS18B20(FakeOneWire(b"\x00" * 9, present=False), delay=no_delay).measure)
    raises(SensorError, DS18B20(FakeOneWire(b"\x91\x01\x4b\x46\x7f\xff\x0c\x10\x71"), delay=no_delay).measure)
    exc = raises(SensorError, DS18B20(FakeOneWire(b"\x00" * 9), delay=no_delay).measure)
    assert "stuck" in str(exc)
    exc = raises(
        SensorError, DS18B20(FakeOneWire(b"\x50\x05\x4b\x46\x7f\xff\x0c\x10\x1c"), delay=no_delay).measure
    )
    assert "85.0" in str(exc)


def test_ds18b20_rom_select():
    from agrinode.config import parse_rom
    from agrinode.drivers.ds18b20 import DS18B20

    rom = bytearray(b"\x28\xff\x4c\x6a\x01\x16\x04\x00")
    rom[7] = crc8_maxim(rom, 0, 7)
    text = "".join("%02x" % b for b in rom)
    assert parse_rom(text) == bytes(rom)
    assert parse_rom(text[:-2] + ("%02x" % (rom[7] ^ 1))) is None  # bad CRC
    assert parse_rom("02" + text[2:]) is None  # not a DS18B20
    assert parse_rom("28zz") is None
    ow = FakeOneWire(b"\x91\x01\x4b\x46\x7f\xff\x0c\x10\x70")
    DS18B20(ow, rom=parse_rom(text), delay=no_delay).measure()
    assert ow.log[1] == ("rom", bytes(rom))


def u16(v, vref=3.3):
    return int(v / vref * 65535 + 0.5)


def test_soil_calibration():
    from agrinode.drivers.analog import Analog

    cal = {"dry": 2.6, "wet": 1.2, "sat": 45.0}
    approx(Analog(FakeADC(u16(2.6)), "soil", cal).measure()[0], 0.0, 0.01)
    approx(Analog(FakeADC(u16(1.2)), "soil", cal).measure()[0], 45.0, 0.01)
    approx(Analog(FakeADC(u16(1.9)), "soil", cal).measure()[0], 22.5, 0.01)
    assert Analog(FakeADC(u16(3.0)), "soil", cal).measure()[0] == 0.0  # drier than dry: clamped
    # Averaging: n reads per measurement.
    approx(Analog(FakeADC(u16(1.8), u16(2.0)), "soil", cal).measure()[0], 22.5, 0.01)
    exc = raises(SensorError, Analog(FakeADC(0), "soil", cal).measure)
    assert "rail" in str(exc)
    raises(SensorError, Analog(FakeADC(65535), "soil", cal).measure)
    raises(ValueError, Analog, FakeADC(0), "soil", {"dry": 1.0, "wet": 1.0})


def test_two_point_probes():
    from agrinode.drivers.analog import Analog

    ph = {"v1": 1.5, "x1": 7.0, "v2": 2.03, "x2": 4.0}
    approx(Analog(FakeADC(u16(1.5)), "ph", ph).measure()[0], 7.0, 0.01)
    approx(Analog(FakeADC(u16(2.03)), "ph", ph).measure()[0], 4.0, 0.01)
    approx(Analog(FakeADC(u16(1.765)), "ph", ph).measure()[0], 5.5, 0.01)
    do = {"v1": 0.0, "x1": 0.0, "v2": 1.6, "x2": 8.26}
    assert Analog(FakeADC(0), "do", do).measure()[0] == 0.0  # anoxic water is a reading, not a fault
    approx(Analog(FakeADC(u16(0.8)), "do", do).measure()[0], 4.13, 0.01)
    approx(Analog(FakeADC(u16(1.2)), "nh3").measure()[0], 50.0, 0.05)
    raises(SensorError, Analog(FakeADC(u16(0.1)), "nh3").measure)  # below the live zero: broken loop
    approx(Analog(FakeADC(u16(1.5)), "leaf").measure()[0], 50.0, 0.05)
    approx(Analog(FakeADC(u16(1.95)), "battery", {"div": 2.0}).measure()[0], 3.9, 0.001)
    raises(ValueError, Analog, FakeADC(0), "ph", {"v1": 1.0, "v2": 1.0})
    raises(ValueError, Analog, FakeADC(0), "battery", {"div": 0.5})


def test_flow_meter_counts_litres():
    from agrinode.drivers.pulse import PulseCounter

    pin = FakePin()
    drv = PulseCounter(pin, 1 / 450)
    assert pin.trigger == FakePin.IRQ_FALLING
    pin.pulse(450)
    approx(drv.measure()[0], 1.0)
    assert drv.measure() == (0.0,)
    pin.pulse(225)
    approx(drv.measure()[0], 0.5)


def test_rain_gauge_debounce():
    from agrinode.drivers.pulse import PulseCounter

    now = [1000]
    pin = FakePin()
    drv = PulseCounter(pin, 0.2, debounce_ms=50, ticks_ms=lambda: now[0])
    for step in (100, 5, 5, 100, 10, 300):  # bounces 5/10 ms after a tip are ignored
        now[0] += step
        pin.pulse()
    approx(drv.measure()[0], 0.6)
