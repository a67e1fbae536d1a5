"""analytics."""

from analytics.agro import et0_fao56_daily, et0_fao56_hourly  # agronomic indices (issue 5, section 3)
from analytics.anomaly import score_series  # streaming anomaly detection (issue 5, section 2)

__all__ = ["et0_fao56_daily", "et0_fao56_hourly", "score_series"]
