"""A tiny local STAC API for tests: ``POST /search`` over a list of items, and files with HTTP
range requests (as GDAL reads cloud-optimised GeoTIFFs), counting the bytes served per file."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


class StacApi:
    def __init__(self, root: Path) -> None:
        self.root = root  # files under /files/ come from here
        self.items: list[dict[str, Any]] = []
        self.searches: list[dict[str, Any]] = []
        self.served: Counter[str] = Counter()  # path -> bytes served
        self.url = ""

    def matches(self, item: dict[str, Any], body: dict[str, Any]) -> bool:
        if body.get("collections") and item.get("collection") not in body["collections"]:
            return False
        if "bbox" in body:
            w, s, e, n = body["bbox"]
            iw, is_, ie, in_ = item["bbox"]
            if iw > e or ie < w or is_ > n or in_ < s:
                return False
        if "datetime" in body:
            lo, hi = body["datetime"].split("/")
            t = _t(item["properties"]["datetime"])
            if (lo not in ("", "..") and t < _t(lo)) or (hi not in ("", "..") and t > _t(hi)):
                return False
        for prop, ops in (body.get("query") or {}).items():
            v = item["properties"].get(prop)
            for op, ref in ops.items():
                if v is None or not {"lt": v < ref, "lte": v <= ref, "gt": v > ref, "gte": v >= ref,
                                     "eq": v == ref}[op]:  # fmt: skip
                    return False
        return True

    def handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_POST(self) -> None:
                if self.path.split("?")[0] != "/search":
                    self._send(404, b"{}", "application/json")
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                api.searches.append(body)
                feats = [i for i in api.items if api.matches(i, body)][: int(body.get("limit", 100))]
                doc = {"type": "FeatureCollection", "features": feats, "links": []}
                self._send(200, json.dumps(doc).encode(), "application/geo+json")

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                if not self.path.startswith("/files/"):
                    self._send(404, b"", "text/plain")
                    return
                path = api.root / self.path.removeprefix("/files/")
                if not path.is_file():
                    self._send(404, b"", "text/plain")
                    return
                data = path.read_bytes()
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    first, _, last = rng.removeprefix("bytes=").split(",")[0].partition("-")
                    a = int(first)
                    b = min(int(last) if last else len(data) - 1, len(data) - 1)
                    chunk = data[a : b + 1]
                    if self.command == "GET":
                        api.served[self.path] += len(chunk)
                    headers = {"Content-Range": f"bytes {a}-{b}/{len(data)}", "Accept-Ranges": "bytes"}
                    self._send(206, chunk, "image/tiff", headers)
                    return
                if self.command == "GET":
                    api.served[self.path] += len(data)
                self._send(200, data, "image/tiff", {"Accept-Ranges": "bytes"})

        return Handler


@contextmanager
def serve(root: Path) -> Iterator[StacApi]:
    api = StacApi(root)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), api.handler())
    api.url = f"http://127.0.0.1:{srv.server_address[1]}"
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield api
    finally:
        srv.shutdown()
        srv.server_close()
        th.join(timeout=5)
