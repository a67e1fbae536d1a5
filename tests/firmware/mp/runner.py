# Runs one MicroPython test function: micropython runner.py MODULE FUNCTION
# Prints "PASS" or the traceback; exit code 0 only on success. Driven by tests/firmware/test_mp.py.
import sys

mod = __import__(sys.argv[1])
fn = getattr(mod, sys.argv[2])
try:
    fn()
except Exception as exc:  # report everything: this is the test harness
    sys.print_exception(exc)
    sys.exit(1)
print("PASS")
