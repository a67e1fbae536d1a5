# agrinode: MicroPython firmware of an agri sensor node (see firmware/README.md).
VERSION = "0.1.0"
