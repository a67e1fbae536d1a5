"""Structured logging: one line per event, ``logfmt`` (default) or JSON.

log = get_logger("ingest")
event(log, "batch_committed", rows=5000, ms=12.3)
-> ts=2026-11-27T08:00:00.123Z level=info svc=ingest event=batch_committed rows=5000 ms=12.3
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_FIELDS = "agri_fields"


def _fmt_value(v: Any) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
    if s == "" or any(c in s for c in ' ="\n\t'):
        return json.dumps(s, ensure_ascii=False)
    return s


def _ts(record: logging.LogRecord) -> str:
    t = time.gmtime(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z"


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, _FIELDS, {})
        head = f"ts={_ts(record)} level={record.levelname.lower()} svc={record.name.removeprefix('agri.')}"
        parts = [head, f"event={_fmt_value(record.getMessage())}"]
        parts += [f"{k}={_fmt_value(v)}" for k, v in fields.items()]
        if record.exc_info:
            parts.append(f"exc={_fmt_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": _ts(record),
            "level": record.levelname.lower(),
            "svc": record.name.removeprefix("agri."),
            "event": record.getMessage(),
        }
        obj.update(getattr(record, _FIELDS, {}))
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return json.dumps(obj, ensure_ascii=False, default=str)


def configure(level: str = "info", fmt: str = "logfmt", stream: Any = None) -> None:
    """Install the structured formatter on the ``agri`` logger tree (idempotent)."""
    root = logging.getLogger("agri")
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def get_logger(service: str) -> logging.Logger:
    return logging.getLogger(f"agri.{service}")


def event(logger: logging.Logger, name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event with key/value fields."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={_FIELDS: fields}, stacklevel=2)
