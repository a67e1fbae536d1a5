# Node entry point (/main.py on a board). The code is in /lib/agrinode as flashed, or in
# /ota/<version>/agrinode after an update over the air (agrinode/ota.py). This file is never
# updated over the air: it picks the version, counts the boots of a version on trial and goes
# back to the previous one after "max" boots that did not confirm it. It imports nothing from
# agrinode before the choice (the package must come from the chosen directory).
import json
import os
import sys


def pick():
    for name in ("ota.json", "ota.json.tmp"):  # .tmp: a power cut between remove and rename (FAT)
        try:
            with open(name) as f:
                b = json.load(f)
            v = b.get("active")
            break
        except (OSError, ValueError, AttributeError):
            b = None
    if b is None:
        return
    if v and not b.get("ok"):
        b["tries"] = b.get("tries", 0) + 1
        if b["tries"] > b.get("max", 3):
            b["bad"] = v
            b["active"] = v = b.get("prev") or ""
            b["ok"] = True
            b["state"] = "rolled back from " + b["bad"]
        with open("ota.json.tmp", "w") as f:
            json.dump(b, f)
        try:
            os.rename("ota.json.tmp", "ota.json")
        except OSError:  # FAT: no rename onto an existing file
            os.remove("ota.json")
            os.rename("ota.json.tmp", "ota.json")
    if v:
        sys.path.insert(0, "ota/" + v)


pick()
del pick
from agrinode.app import main  # noqa: E402

main()
