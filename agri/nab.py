"""Run the anomaly detector over a NAB-layout corpus and score it with the NAB rules.

The corpus (``<category>/<file>.csv`` with ``timestamp,value``) and the scorer
(``nabscore.py``, an independent implementation of NAB's scoring) live outside this repository,
in a folder the caller names (``agri anomaly nab --shared DIR`` or ``AGRI_NAB_DIR``). The detector
sees only timestamps and values, one configuration for every file; labels are read only by the scorer.
"""

from __future__ import annotations

import importlib.util
import os
import sys
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
