# Small filesystem helpers that behave the same on littlefs, FAT and the unix port.
import os


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass


# Test hook (the emulator's sim.json "die"): called as hook(path, step) at each step of a write,
# so a test can kill the process at an exact point. None on a board.
hook = None


def write_atomic(path, data, more=b""):
    # Write-then-rename: a reader sees the old or the new file, never a torn one. FAT refuses to
    # rename onto an existing file, so there the old file is removed first and readers fall back
    # to the ".tmp" copy (see read_atomic) if power fails in between. In that state the ".tmp" is
    # the only copy: it is renamed into place before a new ".tmp" is written over it, or a second
    # power cut during that write would lose both (a spool state lost so: boot counter back to 1).
    tmp = path + ".tmp"
    if not exists(path) and exists(tmp):
        os.rename(tmp, path)
    with open(tmp, "wb") as f:
        if hook:
            hook(path, 0)
        f.write(data)
        if more:
            f.write(more)
    if hook:
        hook(path, 1)
    try:
        os.rename(tmp, path)
    except OSError:
        remove(path)
        if hook:
            hook(path, 2)
        os.rename(tmp, path)
    if hook:
        hook(path, 3)


def read_atomic(path):
    # The file's bytes (or its ".tmp" copy's, see write_atomic), None if neither exists. Read with
    # its size: read() with none grows its buffer 256 bytes at a time, each step a new block as
    # large as all before (a 1.2 KB node.json needed a free 1,280 B block next to the old one).
    for p in (path, path + ".tmp"):
        try:
            with open(p, "rb") as f:
                return f.read(max(1, os.stat(p)[6]))
        except OSError:
            pass
    return None


def size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1
