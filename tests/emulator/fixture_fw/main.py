# Test firmware for the flash tests: proves main.py runs after a reset, imports the compiled
# package from /lib, reads the node config, and counts boots in a file (persistence check).
import json

import agrinode
from agrinode.sub import calc

with open("/node.json") as f:
    cfg = json.load(f)
try:
    with open("/boots.txt") as f:
        boots = int(f.read())
except OSError:
    boots = 0
with open("/boots.txt", "w") as f:
    f.write(str(boots + 1))
print("fixture main.py ran", agrinode.VERSION, cfg["farm"], cfg["node"], calc.double(21), "boot", boots + 1)
