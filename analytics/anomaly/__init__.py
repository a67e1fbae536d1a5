"""Causal streaming anomaly detection, vectorised over many series (pure numpy).

``score_series(timestamps, values)`` scores one series; ``AnomalyState`` + ``update`` feed many
series incrementally (state serialisable per series with ``to_bytes`` / ``from_bytes``).
"""

from analytics.anomaly.config import DEFAULT_CONFIG, DetectorConfig
from analytics.anomaly.detector import score_series, step, update
from analytics.anomaly.state import AnomalyState

__all__ = ["DEFAULT_CONFIG", "AnomalyState", "DetectorConfig", "score_series", "step", "update"]
