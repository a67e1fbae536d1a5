# Board support for running the node firmware on the MicroPython unix port (`agri node emulate`);
# not copied to devices. Like a board with a ROMFS partition (MicroPython 1.25), the compiled
# firmware image is memory-mapped outside the heap and mounted at /rom, so bytecode runs in place
# and the heap holds only data, then /main.py runs. The working directory is the node's
# filesystem root (node.json, spool, state).
#   micropython -X heapsize=64K board.py ROMFS_IMAGE MAIN_PY
import sys


def mount(image):
    import ffi
    import os
    import uctypes
    import vfs

    libc = ffi.open("libc.so.6")
    fd = libc.func("i", "open", "si")(image, 0)
    if fd < 0:
        raise OSError("cannot open ROMFS image " + image)
    size = os.stat(image)[6]
    addr = libc.func("p", "mmap", "pLiiil")(None, size, 1, 2, fd, 0)  # PROT_READ, MAP_PRIVATE
    if addr in (0, -1, (1 << 64) - 1):
        raise OSError("cannot map ROMFS image")
    vfs.mount(vfs.VfsRom(uctypes.bytearray_at(addr, size)), "/rom")
    sys.path[:] = ["/rom/lib", ".frozen"]


mount(sys.argv[1])
main_py = sys.argv[2]
del mount
with open(main_py) as f:
    code = compile(f.read(), "main.py", "exec")
exec(code, {"__name__": "__main__"})
