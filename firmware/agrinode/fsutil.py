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


def write_atomic(path, data, more=b""):
    # Write-then-rename: a reader sees the old or the new file, never a torn one. FAT refuses to
    # rename onto an existing file, so there the old file is removed first and readers fall back
    # to the ".tmp" copy (see read_atomic) if power fails in between.
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        if more:
            f.write(more)
    try:
        os.rename(tmp, path)
    except OSError:
        remove(path)
        os.rename(tmp, path)


def read_atomic(path):
    for p in (path, path + ".tmp"):
        try:
            with open(p, "rb") as f:
                return f.read()
        except OSError:
            pass
    return None


def size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1
