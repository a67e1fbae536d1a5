"""`agri bench anomaly`: detector throughput (batch and one-point ticks) next to baselines.

Baselines measured in the same run: a vectorised rolling z-score (numpy, same data) and river's
HalfSpaceTrees on a sample of one series. The detector loops over time with every step
vectorised over the series, so memory is bounded by feeding time in chunks (the state carries
over, so chunked scoring is the batch result). Values are generated in float32 chunks and are
not part of the timing. While it runs, the process is pinned to one CPU and the BLAS/OpenMP thread
pools are limited to one thread (threadpoolctl; the detector uses no BLAS, element-wise numpy is
single-threaded anyway). Nothing is changed at import: ``agri`` loads this module for every command.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from agri.cli.common import console
from analytics.anomaly import AnomalyState, update

T0 = 1_717_200_000.0


def register(bench_app: typer.Typer) -> None:
    bench_app.command("anomaly")(anomaly)
    bench_app.command("anomaly-csv")(anomaly_csv)


def _chunk(
    rng: np.random.Generator, n: int, j0: int, c: int, interval: float
) -> tuple[np.ndarray, np.ndarray]:
    t = T0 + interval * np.arange(j0, j0 + c, dtype=np.float64)
    phase = np.float32(2 * np.pi / 86_400.0) * (t - T0).astype(np.float32)
    x = 20.0 + 5.0 * np.sin(phase)[None, :] + rng.standard_normal((n, c), dtype=np.float32)
    return np.broadcast_to(t, (n, c)), x.astype(np.float32)


#: series per block of the z-score baseline: its float64 temporaries stay a few MB (whole-matrix
#: temporaries of 120 MB made its speed swing 6-24 M points/s with the kernel's page faults)
_Z_ROWS = 256


def _rolling_z(x: np.ndarray, prev: np.ndarray, w: int) -> np.ndarray:
    """Rolling z-score of each point against the ``w`` points before it, in blocks of series."""
    out = np.empty(x.shape, dtype=np.float64)
    for r0 in range(0, len(x), _Z_ROWS):
        r1 = r0 + _Z_ROWS
        out[r0:r1] = _rolling_z_block(x[r0:r1], prev[r0:r1], w)
    return out


def _rolling_z_block(x: np.ndarray, prev: np.ndarray, w: int) -> np.ndarray:
    """Rolling z-score of each point against the ``w`` points before it (vectorised)."""
    full = np.concatenate([prev, x], axis=1).astype(np.float64)
    c1 = np.cumsum(full, axis=1)
    c2 = np.cumsum(full * full, axis=1)
    c1 = np.concatenate([np.zeros((len(x), 1)), c1], axis=1)
    c2 = np.concatenate([np.zeros((len(x), 1)), c2], axis=1)
    k = prev.shape[1]
    idx = np.arange(k, k + x.shape[1])
    lo = np.maximum(idx - w, 0)
    cnt = np.maximum(idx - lo, 1).astype(np.float64)
    s1 = c1[:, idx] - c1[:, lo]
    s2 = c2[:, idx] - c2[:, lo]
    mean = s1 / cnt
    sd = np.sqrt(np.maximum(s2 / cnt - mean * mean, 1e-12))
    out: np.ndarray = np.abs(full[:, k:] - mean) / sd
    return out


def _river_hst(n_points: int, seed: int) -> float:
    from river import anomaly

    rng = np.random.default_rng(seed)
    xs = (20 + 5 * np.sin(np.arange(n_points) * 2 * np.pi / 1440) + rng.standard_normal(n_points)).tolist()
    model = anomaly.HalfSpaceTrees(n_trees=25, height=8, window_size=250, seed=seed)
    lo, hi = min(xs), max(xs)
    t0 = time.perf_counter()
    for v in xs:
        feat = {"x": (v - lo) / (hi - lo)}
        model.score_one(feat)  # type: ignore[no-untyped-call]
        model.learn_one(feat)  # type: ignore[no-untyped-call]
    return n_points / (time.perf_counter() - t0)


def run(series: int, points: int, chunk: int, ticks: int, river_points: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    interval = 60.0
    st = AnomalyState.new(series)
    det_s = 0.0
    z_s = 0.0
    prev = np.zeros((series, 0), dtype=np.float32)
    window = 60
    for j0 in range(0, points, chunk):
        c = min(chunk, points - j0)
        t, x = _chunk(rng, series, j0, c, interval)
        a = time.perf_counter()
        update(st, t, x)
        det_s += time.perf_counter() - a
        a = time.perf_counter()
        _rolling_z(x, prev, window)
        z_s += time.perf_counter() - a
        prev = x[:, -window:]
    tick_ms = []
    for i in range(ticks):
        t1 = np.full(series, T0 + interval * (points + i))
        x1 = (20.0 + rng.standard_normal(series)).astype(np.float32)
        a = time.perf_counter()
        update(st, t1, x1)
        tick_ms.append((time.perf_counter() - a) * 1e3)
    total = series * points
    batch = total / det_s
    zscore = total / z_s
    hst = _river_hst(river_points, seed) if river_points > 0 else float("nan")
    return {
        "series": series,
        "points_per_series": points,
        "chunk": chunk,
        "state_bytes_per_series": st.nbytes_per_series(),
        "batch_seconds": round(det_s, 3),
        "batch_points_per_s": round(batch),
        "tick_series": series,
        "tick_ms": round(float(np.median(tick_ms)), 3),
        "tick_ms_max": round(float(np.max(tick_ms)), 3),
        "baselines": {
            "rolling_zscore_points_per_s": round(zscore),
            "river_hst_points_per_s": round(hst) if np.isfinite(hst) else None,
            "river_hst_sample_points": river_points,
        },
        "ratios": {
            "detector_vs_rolling_zscore": round(batch / zscore, 4),
            "detector_vs_river_hst": round(batch / hst, 1) if np.isfinite(hst) else None,
        },
    }


def _pin_one_core() -> int | None:
    """Run on one CPU."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    return cpus[-1]


def anomaly(
    series: Annotated[int, typer.Option(min=1, help="number of series advancing together")] = 10_000,
    points: Annotated[int, typer.Option(min=1, help="points per series (a week at 1 min)")] = 10_080,
    chunk: Annotated[int, typer.Option(min=1, help="time steps generated and fed per batch call")] = 1_440,
    ticks: Annotated[int, typer.Option(min=1, help="one-point ticks timed after the batch")] = 20,
    river_points: Annotated[int, typer.Option(min=0, help="river HST sample (0: skip)")] = 5_000,
    seed: Annotated[int, typer.Option(help="random seed of the generated data")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Batch points/s and tick latency of the detector, with a rolling z-score and river HST."""
    # Imported here: threadpoolctl sets KMP_DUPLICATE_LIB_OK when imported, which must not reach
    # every `agri` process (this module is loaded for every command).
    from threadpoolctl import threadpool_limits

    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        pinned = _pin_one_core()
        with threadpool_limits(limits=1):
            res = run(series, points, min(chunk, points), ticks, river_points, seed)
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
    res["pinned_cpu"] = pinned
    if json_out:
        print(json.dumps(res))
        return
    b = res["baselines"]
    r = res["ratios"]
    console.print(f"anomaly detector: {series} series x {points} points (chunks of {res['chunk']})")
    console.print(f"  batch            {res['batch_points_per_s']:>14,} points/s ({res['batch_seconds']} s)")
    console.print(
        f"  tick             {res['tick_ms']:>14} ms median for {series} series (max {res['tick_ms_max']})"
    )
    console.print(f"  state            {res['state_bytes_per_series']:>14} bytes per series")
    console.print(
        f"  rolling z-score  {b['rolling_zscore_points_per_s']:>14,} points/s"
        f"  (detector/z-score = {r['detector_vs_rolling_zscore']})"
    )
    if b["river_hst_points_per_s"] is not None:
        console.print(
            f"  river HST        {b['river_hst_points_per_s']:>14,} points/s on {river_points} points"
            f"  (detector/HST = {r['detector_vs_river_hst']})"
        )


def _write_csv_folder(folder: Path, files: int, rows_min: int, rows_max: int, seed: int) -> int:
    """``files`` 5-minute series of ``rows_min``..``rows_max`` rows (a diurnal cycle and noise)."""
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(files):
        n = int(rng.integers(rows_min, rows_max + 1))
        t = 1_717_200_000 + 300 * np.arange(n)
        x = 20.0 + 5.0 * np.sin(t * (2 * np.pi / 86_400.0)) + rng.standard_normal(n)
        body = "\n".join(f"{a},{b:.3f}" for a, b in zip(t.tolist(), x.tolist(), strict=True))
        (folder / f"s{i:04d}.csv").write_text("timestamp,value\n" + body + "\n")
        total += n
    return total


def anomaly_csv(
    files: Annotated[int, typer.Option(min=1, help="CSV files in the generated folder")] = 200,
    rows_min: Annotated[int, typer.Option(min=1, help="fewest rows per file")] = 2_000,
    rows_max: Annotated[int, typer.Option(min=1, help="most rows per file")] = 6_000,
    baseline_files: Annotated[int, typer.Option(min=1, help="files scored one by one as the baseline")] = 10,
    seed: Annotated[int, typer.Option(help="random seed of the generated data")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """`agri anomaly score` on a folder: files scored together in groups, against one by one."""
    import tempfile

    from agri.cli.anomaly import _score_file, score

    if rows_max < rows_min:
        raise typer.BadParameter(f"--rows-max ({rows_max}) is below --rows-min ({rows_min})")
    with tempfile.TemporaryDirectory(prefix="agri-bench-csv-") as tmp:
        src, out, one = Path(tmp) / "in", Path(tmp) / "out", Path(tmp) / "one"
        src.mkdir()
        rows = _write_csv_folder(src, files, rows_min, rows_max, seed)
        a = time.perf_counter()
        if json_out:  # the command's progress and summary would break the JSON on stdout
            with console.capture():
                score(src, out, strict=False)
        else:
            score(src, out, strict=False)
        grouped_s = time.perf_counter() - a
        sample = sorted(src.glob("*.csv"))[:baseline_files]
        a = time.perf_counter()
        base_rows = sum(_score_file(p, one / p.name) for p in sample)
        base_s = time.perf_counter() - a
        same = all((out / p.name).read_bytes() == (one / p.name).read_bytes() for p in sample)
    res = {
        "files": files,
        "rows": rows,
        "grouped_seconds": round(grouped_s, 3),
        "grouped_rows_per_s": round(rows / grouped_s),
        "one_by_one_files": len(sample),
        "one_by_one_rows": base_rows,
        "one_by_one_seconds": round(base_s, 3),
        "one_by_one_rows_per_s": round(base_rows / base_s),
        "ratio": round((rows / grouped_s) / (base_rows / base_s), 1),
        "same_output": same,
    }
    if json_out:
        print(json.dumps(res))
        return
    console.print(f"anomaly score on a folder: {files} files, {rows:,} rows (read, scored, written)")
    console.print(f"  in groups     {res['grouped_rows_per_s']:>12,} rows/s ({res['grouped_seconds']} s)")
    console.print(
        f"  one by one    {res['one_by_one_rows_per_s']:>12,} rows/s ({len(sample)} files, {base_rows:,})"
    )
    console.print(f"  groups / one by one = {res['ratio']}; same output for those files: {same}")
