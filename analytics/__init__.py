"""analytics."""

from analytics.anomaly import score_series  # streaming anomaly detection (issue 5, section 2)

__all__ = ["score_series"]
