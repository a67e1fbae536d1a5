"""Downloads of what a chart shows: CSV (UTF-8 with BOM, so Excel opens Chinese headers) and xlsx."""

from __future__ import annotations

import io

import pandas as pd


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Time zones written out as local wall-clock time (Excel has no zone-aware cells)."""
    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype):
            out[col] = out[col].dt.tz_localize(None)
    return out


def to_csv(frame: pd.DataFrame) -> bytes:
    text: str = _plain(frame).to_csv(index=False)
    return text.encode("utf-8-sig")


def to_xlsx(frame: pd.DataFrame, sheet: str = "data") -> bytes:
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="openpyxl") as xw:
        _plain(frame).to_excel(xw, sheet_name=sheet[:31] or "data", index=False)
    return buf.getvalue()
