"""Run the anomaly detector over a NAB-layout corpus and score it with the NAB rules.

The corpus (``<category>/<file>.csv`` with ``timestamp,value``) and the scorer
(``nabscore.py``, an independent implementation of NAB's scoring) live outside this repository;
both paths are arguments (this module does not know where they are). The detector sees only timestamps
and values, one configuration for every file; labels are read only by the scorer.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from agri.anomaly_io import read_series_csv, write_scores_csv
from analytics.anomaly.config import DEFAULT_CONFIG, DetectorConfig
from analytics.anomaly.detector import update
from analytics.anomaly.state import AnomalyState

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


@dataclass
class Series:
    name: str  # relative path, e.g. "realAdExchange/exchange-2_cpc_results.csv"
    times: np.ndarray  # float64 Unix seconds
    values: np.ndarray  # float64
    stamps: list[str]  # timestamps as written in the file


def load_corpus(data_dir: Path) -> list[Series]:
    out = []
    for path in sorted(data_dir.glob("*/*.csv")):
        data = read_series_csv(path)
        out.append(Series(str(path.relative_to(data_dir)), data.times, data.values, data.stamps))
    if not out:
        raise FileNotFoundError(f"no <category>/<file>.csv under {data_dir}")
    return out


def score_corpus(series: list[Series], cfg: DetectorConfig = DEFAULT_CONFIG) -> dict[str, np.ndarray]:
    """Score every file, all files advancing together as one vectorised batch."""
    length = max(len(s.values) for s in series)
    times = np.empty((len(series), length))
    values = np.full((len(series), length), np.nan)
    for i, s in enumerate(series):
        n = len(s.values)
        times[i, :n] = s.times
        times[i, n:] = s.times[-1]
        values[i, :n] = s.values
    scores = update(AnomalyState.new(len(series), cfg), times, values)
    return {s.name: scores[i, : len(s.values)].astype(np.float64) for i, s in enumerate(series)}


def load_scorer(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("nabscore", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"cannot load the NAB scorer from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("nabscore", module)
    spec.loader.exec_module(module)
    return module


def evaluate(
    scorer: ModuleType,
    labels: Path,
    data_dir: Path,
    scores: dict[str, np.ndarray],
    only: list[str] | None = None,
) -> dict[str, Any]:
    """NAB normalised score per profile (threshold optimised by the scorer, one for all files)."""
    corpus = scorer.load_corpus(str(labels), str(data_dir), only)
    picked = {name: scores[name] for name in corpus.names()}
    result: dict[str, Any] = scorer.score_detector(corpus, picked)
    return result


def leave_one_category_out(
    scorer: ModuleType, labels: Path, data_dir: Path, scores: dict[str, np.ndarray]
) -> dict[str, float]:
    """Normalised score per profile when each category is scored at the threshold chosen on
    the other categories only (raw scores summed over categories, then normalised)."""
    corpus = scorer.load_corpus(str(labels), str(data_dir))
    cats = sorted({name.split("/")[0] for name in corpus.names()})
    raw: dict[str, float] = {}
    null: dict[str, float] = {}
    perfect: dict[str, float] = {}
    for cat in cats:
        rest = [c for c in cats if c != cat]
        train = corpus.subset(rest)
        tuned = scorer.score_detector(train, {n: scores[n] for n in train.names()})
        held = corpus.subset([cat])
        thresholds = {p: r["threshold"] for p, r in tuned.items()}
        res = scorer.score_detector(held, {n: scores[n] for n in held.names()}, thresholds=thresholds)
        for prof, r in res.items():
            raw[prof] = raw.get(prof, 0.0) + float(r["raw"])
            null[prof] = null.get(prof, 0.0) + float(r["null"])
            perfect[prof] = perfect.get(prof, 0.0) + float(r["perfect"])
    return {p: round(100.0 * (raw[p] - null[p]) / (perfect[p] - null[p]), 2) for p in raw}


def write_results(out_dir: Path, series: list[Series], scores: dict[str, np.ndarray]) -> None:
    """One ``timestamp,value,anomaly_score`` CSV per file, same relative path (NAB layout)."""
    for s in series:
        path = out_dir / s.name
        os.makedirs(path.parent, exist_ok=True)
        write_scores_csv(path, s.stamps, s.values, scores[s.name])


#: the constants tuned inside each cross-validation fold (3 x 3 candidates): the two the NAB score
#: moves with most among those with no physical meaning fixed by the farm data
CV_GRID: dict[str, tuple[float, ...]] = {
    "level_rate": (0.002, 0.003, 0.004),
    "onset_decay": (0.98, 0.99, 0.995),
}


def _grid_configs(base: DetectorConfig, grid: dict[str, tuple[float, ...]]) -> list[DetectorConfig]:
    out = [base]
    for name, vals in grid.items():
        out = [dataclasses.replace(c, **{name: v}) for c in out for v in vals]  # type: ignore[arg-type]
    return out


def cross_validate(
    scorer: ModuleType,
    labels: Path,
    data_dir: Path,
    series: list[Series],
    base: DetectorConfig = DEFAULT_CONFIG,
    grid: dict[str, tuple[float, ...]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Leave one category out: on the other three categories pick the best configuration of
    ``grid`` (standard profile) and the scorer's thresholds; score the held-out category with
    them. Returns per category the chosen constants and its standard raw / normalised score
    (a category without anomaly windows has no normalised score: its raw score, 0 at best,
    counts its false alarms), the mean of the normalised scores, and the pooled score of all
    four held-out categories per profile."""
    grid = CV_GRID if grid is None else grid
    configs = _grid_configs(base, grid)
    scored = []
    for i, cfg in enumerate(configs):
        if progress is not None:
            progress(f"configuration {i + 1}/{len(configs)}")
        scored.append(score_corpus(series, cfg))
    corpus = scorer.load_corpus(str(labels), str(data_dir))
    cats = sorted({name.split("/")[0] for name in corpus.names()})
    per_cat: dict[str, Any] = {}
    pooled: dict[str, list[float]] = {}
    for cat in cats:
        train = corpus.subset([c for c in cats if c != cat])
        held = corpus.subset([cat])
        tuned = [scorer.score_detector(train, {n: sc[n] for n in train.names()}) for sc in scored]
        best = max(range(len(configs)), key=lambda i: (tuned[i]["standard"]["score"], -i))
        thresholds = {p: r["threshold"] for p, r in tuned[best].items()}
        res = scorer.score_detector(held, {n: scored[best][n] for n in held.names()}, thresholds=thresholds)
        held_score = res["standard"]["score"]
        per_cat[cat] = {
            "chosen": {name: getattr(configs[best], name) for name in grid},
            "threshold": thresholds["standard"],
            "standard": None if held_score is None else round(float(held_score), 2),
            "standard_raw": round(float(res["standard"]["raw"]), 3),
            "train_standard": round(float(tuned[best]["standard"]["score"]), 2),
        }
        for prof, r in res.items():
            acc = pooled.setdefault(prof, [0.0, 0.0, 0.0])
            acc[0] += float(r["raw"])
            acc[1] += float(r["null"])
            acc[2] += float(r["perfect"])
    normed = [v["standard"] for v in per_cat.values() if v["standard"] is not None]
    return {
        "grid": {k: list(v) for k, v in grid.items()},
        "categories": per_cat,
        "mean_standard": round(sum(normed) / len(normed), 2) if normed else None,
        "pooled": {p: round(100.0 * (a[0] - a[1]) / (a[2] - a[1]), 2) for p, a in pooled.items()},
    }


#: fields left out of the +-20 % sweep: sizes of arrays (they change the state layout, not a
#: tuning choice) and the grid offsets, which the edge-placement sweep covers
_NOT_SWEPT = ("daily_bins", "weekly_bins", "tail_bins", "tail_lo", "density_lo")


def robustness(
    scorer: ModuleType,
    labels: Path,
    data_dir: Path,
    series: list[Series],
    base: DetectorConfig = DEFAULT_CONFIG,
    placements: int = 8,
    change: float = 0.2,
    progress: Callable[[str], None] | None = None,
    only: Sequence[str] | None = None,
    start_offsets: int = 5,
) -> dict[str, Any]:
    """Standard score over ``placements`` offsets of every histogram grid (k/placements of a
    step) and with each constant alone at (1 -/+ ``change``) x its value (integers rounded);
    ``only`` limits the constants swept to those named.

    Beside each score, the number of anomaly windows detected at the run's own optimised
    threshold, the windows it finds that the default misses (``gained``) and those it misses
    that the default finds (``lost``), as ``file#window``, and its false-alarm rows: on a small
    corpus one window found or missed moves the standard score by one to two points (a true
    positive earns up to 1, a miss costs 1, over a range of twice the number of windows), so
    the windows show which differences are a single detection.

    For scale, ``start_offsets`` runs of the default configuration with every file started
    1, 2, ... points later (rows inside NAB's probationary period, which is never scored): a
    change with no meaning for the method, so their spread is the score's own noise at this
    corpus' granularity (reported apart; not part of the band)."""
    fields = [f.name for f in dataclasses.fields(base) if f.name not in _NOT_SWEPT]
    if only is not None:
        unknown = sorted(set(only) - set(fields))
        if unknown:
            raise ValueError(f"not a swept constant: {', '.join(unknown)} (swept: {', '.join(fields)})")
        fields = [f for f in fields if f in only]
    runs: dict[str, dict[str, Any]] = {}
    found: dict[str, set[str]] = {}
    layout = scorer.load_corpus(str(labels), str(data_dir))
    first = f"edge placement 0/{placements}"

    def record(label: str, scores: dict[str, np.ndarray]) -> float:
        res = evaluate(scorer, labels, data_dir, scores)["standard"]
        found[label] = detected_windows(layout, scores, res["threshold"])
        base = found.get(first, found[label])
        runs[label] = {
            "score": round(float(res["score"]), 2),
            "windows": int(res["counts"]["windows_detected"]),
            "false_alarm_rows": int(res["counts"]["fp_rows"]),
            "gained": sorted(found[label] - base),
            "lost": sorted(base - found[label]),
        }
        return float(runs[label]["score"])

    def run(cfg: DetectorConfig, label: str) -> float:
        if progress is not None:
            progress(label)
        return record(label, score_corpus(series, cfg))

    edges: list[float] = []
    for k in range(placements):
        shift = base.tail_step * k / placements
        cfg = dataclasses.replace(base, tail_lo=base.tail_lo + shift, density_lo=base.density_lo + shift)
        edges.append(run(cfg, f"edge placement {k}/{placements}"))
    constants: dict[str, list[float]] = {}
    for name in fields:
        value = getattr(base, name)
        got = []
        for factor in (1.0 - change, 1.0 + change):
            new = value * factor
            if isinstance(value, int):
                new = max(1, round(new))
            if name == "onset_decay":  # a decay: +-20 % of its time constant 1/(1-d)
                new = 1.0 - (1.0 - value) / factor
            label = f"{name} x {factor:.2f}"
            if new == value:
                got.append(edges[0])
                runs[label] = runs[first]
                continue
            got.append(run(dataclasses.replace(base, **{name: new}), label))
        constants[name] = got
    every = edges + [v for pair in constants.values() for v in pair]
    counted = [int(r["windows"]) for r in runs.values()]
    offsets = [edges[0]]
    for k in range(1, start_offsets + 1):
        label = f"start +{k}"
        if progress is not None:
            progress(label)
        later = [
            dataclasses.replace(s, times=s.times[k:], values=s.values[k:], stamps=s.stamps[k:])
            for s in series
        ]
        scored = score_corpus(later, base)
        # the skipped rows get no score (NaN never fires): the scorer sees every file whole
        padded = {s.name: np.concatenate([np.full(k, np.nan), scored[s.name]]) for s in series}
        offsets.append(record(label, padded))
    return {
        "default": edges[0],
        "edge_placements": edges,
        "edge_spread": round(max(edges) - min(edges), 2),
        "edge_mean": round(sum(edges) / len(edges), 2),
        "constants": constants,
        "constant_spread": round(max(every) - min(every), 2),
        "min": min(every),
        "max": max(every),
        "windows": {
            "scored": _scored_windows(scorer, labels, data_dir),
            "default": int(runs[first]["windows"]),
            "min": min(counted),
            "max": max(counted),
        },
        "start_offsets": {
            "scores": offsets,
            "spread": round(max(offsets) - min(offsets), 2),
        },
        "runs": runs,
    }


def detected_windows(layout: Any, scores: dict[str, np.ndarray], threshold: float | None) -> set[str]:
    """The scored anomaly windows (``file#k``) with a score at or above ``threshold`` on a
    scored row, by the scorer's own layout (``layout.files[name].spans``, ``scored_windows`` and
    ``start``, the first row after the probationary period): what its direct evaluation counts as
    detected."""
    out: set[str] = set()
    if threshold is None:
        return out
    for name, lay in layout.files.items():
        s = np.nan_to_num(np.asarray(scores[name], dtype=np.float64), nan=-np.inf)
        for k in lay.scored_windows:
            a, b = lay.spans[k]
            a = max(a, lay.start)
            if b >= a and bool((s[a : b + 1] >= threshold).any()):
                out.add(f"{name}#{k}")
    return out


def _scored_windows(scorer: ModuleType, labels: Path, data_dir: Path) -> int:
    return int(scorer.load_corpus(str(labels), str(data_dir)).n_scored_windows)
