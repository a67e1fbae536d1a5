# Test firmware for the flash tests: proves boot.py runs after a reset.
print("fixture boot.py ran")
