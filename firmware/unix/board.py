# Board support for running the node firmware on the MicroPython unix port (`agri node emulate`);
# not copied to devices. The simulated hardware (agrisim.py) stands where a board has its C
# drivers: in a ROMFS image mapped outside the heap, mounted at /board. The firmware's compiled
# code is either another ROMFS image, mounted at /rom and run in place as on a board with a ROMFS
# partition (MicroPython 1.25), or a directory of .mpy files loaded into the heap, as /lib on a
# board without one; in that case agrinode.hal (what a board imports instead of the simulator) is
# loaded too (by agrinode.app, after main.py picked the version), so the heap holds what a board's
# would. Then /main.py runs. The working directory is the node's filesystem root (node.json, spool,
# state).
#   micropython -X heapsize=64K board.py BOARD_IMAGE (FIRMWARE_IMAGE.img | LIB_DIR) MAIN_PY
import sys


def mount(image, at):
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
    if addr in (0, -1, (1 << 32) - 1, (1 << 64) - 1):  # MAP_FAILED, 32- or 64-bit port
        raise OSError("cannot map ROMFS image")
    vfs.mount(vfs.VfsRom(uctypes.bytearray_at(addr, size)), at)


mount(sys.argv[1], "/board")
code = sys.argv[2]
if code.endswith(".img"):
    mount(code, "/rom")
    code = "/rom/lib"
else:
    # The .mpy directory as /lib, the path a board loads them from: each module's __file__ is
    # an interned string in the heap, so a long host path would cost heap a board does not pay.
    import vfs

    vfs.mount(vfs.VfsPosix(code), "/lib")
    code = "/lib"
    sys.argv.append("--hal")  # agrinode.app loads agrinode.hal too: its heap cost on a board
sys.path[:] = [code, "/board", ".frozen"]
main_py = sys.argv[3]
del mount
with open(main_py) as f:
    src = compile(f.read(), "main.py", "exec")
exec(src, {"__name__": "__main__"})
