# One line per event on the console: level=info event=published seq=12 n=3
# (the emulator and the serial console show it; tests parse it).


def _fmt(v):
    s = v if isinstance(v, str) else repr(v)
    if not s or " " in s or '"' in s or "=" in s:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s


def log(event, level="info", **kw):
    line = "level=" + level + " event=" + event
    for k in kw:
        line += " " + k + "=" + _fmt(kw[k])
    print(line)
