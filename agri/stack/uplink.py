"""A TCP relay standing in for a farm's 4G uplink, which the demo can cut and restore.

The gateway's upstream URL points at the relay; :meth:`Uplink.cut` drops every connection at once
and refuses new ones (as a dead link looks to both ends), :meth:`Uplink.restore` lets them through.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading


class Uplink:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.up = True
        self.relayed = 0  # bytes
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def cut(self) -> None:
        with self._lock:
            self.up = False
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def restore(self) -> None:
        with self._lock:
            self.up = True

    def close(self) -> None:
        self._stop.set()
        self.cut()
        with contextlib.suppress(OSError):
            self.listener.close()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                pairs = list(self._pairs)
            socks = [self.listener] + [s for p in pairs for s in p]
            try:
                r, _, _ = select.select(socks, [], [], 0.2)
            except (OSError, ValueError):
                continue
            for s in r:
                if s is self.listener:
                    self._accept()
                    continue
                pair = next((p for p in pairs if s in p), None)
                if pair is None:
                    continue
                other = pair[1] if s is pair[0] else pair[0]
                try:
                    data = s.recv(65536)
                    if data:
                        other.sendall(data)
                        self.relayed += len(data)
                        continue
                except OSError:
                    pass
                with self._lock:
                    if pair in self._pairs:
                        self._pairs.remove(pair)
                for x in pair:
                    with contextlib.suppress(OSError):
                        x.close()

    def _accept(self) -> None:
        try:
            c, _ = self.listener.accept()
        except OSError:
            return
        if not self.up:
            c.close()
            return
        try:
            u = socket.create_connection(self.target, timeout=5)
        except OSError:
            c.close()
            return
        with self._lock:
            self._pairs.append((c, u))
