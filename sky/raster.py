"""Windowed raster reads on a block's pixel grid.

A block's grid is the window of the reference band's pixel lattice that covers the block's
polygon (reprojected to the raster's CRS with pyproj). Every band, whatever its resolution, is
sampled onto that grid by nearest neighbour (the source pixel that contains each grid pixel's
centre), reading only the window of the source file that covers it. Grid pixels beyond the
file's extent come back as NaN, so a block crossing the tile edge counts them as not valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from affine import Affine
from numpy.typing import NDArray
from pyproj import CRS, Transformer
from rasterio.io import DatasetReader
from shapely.geometry.base import BaseGeometry

from analytics.imagery.mask import polygon_mask
from sky.errors import InputError

# Densify lon/lat edges before reprojecting (about 10 m), so a long straight edge stays where it is.
_SEGMENT_DEG = 1e-4


@lru_cache(maxsize=64)
def _to_crs(crs_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_epsg(4326), CRS.from_wkt(crs_wkt), always_xy=True)


def reproject_lonlat(geom: BaseGeometry, crs_wkt: str) -> BaseGeometry:
    """A WGS 84 lon/lat geometry in the raster's CRS."""
    t = _to_crs(crs_wkt)
    dense = shapely.segmentize(geom, _SEGMENT_DEG)

    def fn(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = t.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(dense, fn)


@dataclass(frozen=True)
class Grid:
    """A window of a north-up pixel lattice: its transform and shape."""

    transform: Affine
    height: int
    width: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) of the window (north-up lattice)."""
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)


def check_north_up(ds: DatasetReader) -> None:
    t = ds.transform
    if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
        raise InputError(f"{ds.name}: only north-up rasters are supported (transform {tuple(t)[:6]})")


def block_grid(ds: DatasetReader, geom: BaseGeometry) -> Grid | None:
    """The window of ``ds``'s lattice covering ``geom`` (in ``ds``'s CRS), unclipped; None if it
    does not overlap the raster at all."""
    t = ds.transform
    w, s, e, n = geom.bounds
    col0 = math.floor((w - t.c) / t.a)
    col1 = math.ceil((e - t.c) / t.a)
    row0 = math.floor((n - t.f) / t.e)
    row1 = math.ceil((s - t.f) / t.e)
    if col1 <= 0 or row1 <= 0 or col0 >= ds.width or row0 >= ds.height or col1 <= col0 or row1 <= row0:
        return None
    shifted = Affine(t.a, 0.0, t.c + col0 * t.a, 0.0, t.e, t.f + row0 * t.e)
    return Grid(shifted, row1 - row0, col1 - col0)


def inside_mask(grid: Grid, geom: BaseGeometry) -> NDArray[np.bool_]:
    """True for grid pixels whose centre lies inside the polygon (``analytics.imagery.mask``:
    pure numpy, so blocks can be masked from several threads)."""
    t = grid.transform
    rings = []
    for part in getattr(geom, "geoms", [geom]):
        for ring in (part.exterior, *part.interiors):
            xy = np.asarray(ring.coords)[:, :2]
            rings.append(np.column_stack([(xy[:, 0] - t.c) / t.a, (xy[:, 1] - t.f) / t.e]))
    return polygon_mask(rings, grid.shape)


def _index(centres: NDArray[np.floating[Any]], origin: float, step: float) -> NDArray[np.int64]:
    idx: NDArray[np.int64] = np.floor((centres - origin) / step).astype(np.int64)
    return idx


def read_on_grid(ds: DatasetReader, bands: list[int], grid: Grid) -> NDArray[Any]:
    """``(len(bands), h, w)`` samples of ``ds`` on ``grid``, reading one window of the source: the
    pixels containing the grid's pixel centres.

    When the grid lies inside the file on the file's own lattice (the usual case) this is the
    window as stored (the file's dtype, no copy). Otherwise it is float (float32, exact for 8- and
    16-bit data, or float64 for float64 files) with NaN for grid pixels beyond the file's extent.
    """
    check_north_up(ds)
    g = grid.transform
    t = ds.transform
    xs = g.c + g.a * (np.arange(grid.width) + 0.5)
    ys = g.f + g.e * (np.arange(grid.height) + 0.5)
    cols = _index(xs, t.c, t.a)
    rows = _index(ys, t.f, t.e)
    cok = (cols >= 0) & (cols < ds.width)
    rok = (rows >= 0) & (rows < ds.height)
    dtype = np.float64 if np.dtype(ds.dtypes[bands[0] - 1]) == np.float64 else np.float32
    if not cok.any() or not rok.any():
        return np.full((len(bands), grid.height, grid.width), np.nan, dtype=dtype)
    c0, c1 = int(cols[cok].min()), int(cols[cok].max()) + 1
    r0, r1 = int(rows[rok].min()), int(rows[rok].max()) + 1
    ri = rows[rok] - r0
    ci = cols[cok] - c0
    same_lattice = _is_run(ri) and _is_run(ci)
    if same_lattice and cok.all() and rok.all() and (r1 - r0, c1 - c0) == grid.shape:
        window: NDArray[Any] = ds.read(bands, window=((r0, r1), (c0, c1)))
        return window
    data: NDArray[Any] = ds.read(bands, window=((r0, r1), (c0, c1)))
    if same_lattice:  # a plain slice, no gather
        block = data[:, int(ri[0]) : int(ri[-1]) + 1, int(ci[0]) : int(ci[-1]) + 1]
    else:
        block = data[:, ri[:, None], ci[None, :]]
    out = np.full((len(bands), grid.height, grid.width), np.nan, dtype=dtype)
    rsel = np.flatnonzero(rok)
    csel = np.flatnonzero(cok)
    if _is_run(rsel) and _is_run(csel):
        out[:, int(rsel[0]) : int(rsel[-1]) + 1, int(csel[0]) : int(csel[-1]) + 1] = block
    else:
        out[np.ix_(np.arange(len(bands)), rsel, csel)] = block
    return out


Chunk = tuple[int, int, int, int]  # rows a0:a1, columns b0:b1 of a grid


def tile_chunks(ds: DatasetReader, grid: Grid) -> list[Chunk]:
    """The grid cut along ``ds``'s tile (block) boundaries, tile row by tile row (``grid`` being a
    window of ``ds``'s lattice; otherwise one chunk, the whole grid)."""
    g, t = grid.transform, ds.transform
    h, w = grid.shape
    fc, fr = (g.c - t.c) / t.a, (g.f - t.f) / t.e
    if (g.a, g.e) != (t.a, t.e) or abs(fc - round(fc)) > 1e-6 or abs(fr - round(fr)) > 1e-6:
        return [(0, h, 0, w)]
    r0, c0 = round(fr), round(fc)
    th, tw = ds.block_shapes[0]
    return [
        (max(tr, r0) - r0, min(tr + th, r0 + h) - r0, max(tc, c0) - c0, min(tc + tw, c0 + w) - c0)
        for tr in range(r0 // th * th, r0 + h, th)
        for tc in range(c0 // tw * tw, c0 + w, tw)
    ]


def read_selected(
    ds: DatasetReader, bands: list[int], grid: Grid, select: NDArray[np.bool_], chunks: list[Chunk]
) -> NDArray[Any]:
    """``(len(bands), n)`` samples of the ``n`` selected pixels of ``grid`` (a grid-shaped mask),
    chunk by chunk (each chunk's pixels in row-major order), so every band comes in the same
    order whatever its file's tiling. When the grid is a window of ``ds``'s own lattice inside the
    file, only the chunks holding a selected pixel are read (with ``tile_chunks`` of the file:
    only those tiles are decoded, and no window-sized array is made); otherwise through
    ``read_on_grid``."""
    g, t = grid.transform, ds.transform
    fc, fr = (g.c - t.c) / t.a, (g.f - t.f) / t.e
    c0, r0 = round(fc), round(fr)
    h, w = grid.shape
    direct = (
        (g.a, g.e) == (t.a, t.e)
        and abs(fc - c0) <= 1e-6
        and abs(fr - r0) <= 1e-6
        and r0 >= 0
        and c0 >= 0
        and r0 + h <= ds.height
        and c0 + w <= ds.width
    )
    whole = None if direct else read_on_grid(ds, bands, grid)
    dtype = ds.dtypes[bands[0] - 1] if whole is None else whole.dtype
    out = np.empty((len(bands), int(np.count_nonzero(select))), dtype=dtype)
    pos = 0
    for a0, a1, b0, b1 in chunks:
        m = select[a0:a1, b0:b1]
        k = int(np.count_nonzero(m))
        if not k:
            continue
        if whole is not None:
            out[:, pos : pos + k] = whole[:, a0:a1, b0:b1][:, m]
        else:
            part = ds.read(bands, window=((r0 + a0, r0 + a1), (c0 + b0, c0 + b1))).reshape(len(bands), -1)
            # the same pixels in the same (row-major) order as part[:, m], 3-4x faster: a whole
            # tile inside the block is copied as is, a partial one gathered by flat index
            out[:, pos : pos + k] = part if k == m.size else np.take(part, np.flatnonzero(m), axis=1)
        pos += k
    return out


def _is_run(idx: NDArray[np.int64]) -> bool:
    """Consecutive increasing integers (a slice)."""
    return idx.size > 0 and int(idx[-1]) - int(idx[0]) + 1 == idx.size and bool(np.all(np.diff(idx) == 1))
