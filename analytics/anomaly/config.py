"""Every threshold and constant of the streaming anomaly detector, in one place.

Time constants are given in *typical sampling intervals* (the detector estimates each series'
own interval) or in *cycles* for the seasonal profiles, so the same configuration serves a
1-minute soil probe and an hourly weather feed. One configuration serves every series: nothing
here is chosen per series.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Version byte written at the head of every serialised state; bump when the layout changes
#: (2: 64 tail-histogram edges instead of 32, 2026-12-06; 3: the excursion test's run length and
#: histogram, 2026-12-06; 4: bin sums beside the survival counts, read over a window, 2026-12-07).
STATE_VERSION = 4

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S


@dataclass(frozen=True)
class DetectorConfig:
    """Constants of the detector (see docs/analytics.md, "Streaming anomaly detection")."""

    # --- sampling interval ---------------------------------------------------------------
    #: adaptation rate of the typical sampling interval (log domain, clipped steps)
    interval_rate: float = 0.05
    #: a gap counts as at most this many missed intervals (bounds the decay after outages)
    max_gap_steps: float = 1_000.0

    # --- baselines -------------------------------------------------------------------------
    #: bins per daily / weekly seasonal profile (fewer when the series is sampled more coarsely)
    daily_bins: int = 288
    weekly_bins: int = 168
    #: points after which a series' bin count is fixed from its sampling interval
    bins_after_points: int = 8
    #: fraction of a profile bin replaced per cycle once a full cycle has been seen
    season_rate: float = 0.15
    #: slow level EWMA (per interval): the baseline of a series without a usable season
    level_rate: float = 0.003
    #: slow offset EWMA of the seasonal baselines (per interval): slower than the level, so a
    #: drift or a slow sag on a diurnal series stays visible against its profile for longer
    offset_rate: float = 0.001
    #: mean-absolute-error trackers of the predictors (per point)
    error_rate: float = 1.0 / 128.0
    #: an error tracker needs this many points before its predictor can be chosen
    min_error_points: int = 16

    # --- tail probabilities (decayed histogram with bin means per feature) ---------------
    #: points after which a series' unit of surprise (its slow mean's error) is fixed
    scale_after_points: int = 100
    #: log2 of the lowest edge (in units of surprise), edge spacing (log2) and number of edges:
    #: 2^-3.8 .. 2^19.1 units, wide enough for a fixed unit on series that vary by decades (the
    #: top bin is open: values beyond it are an exponential tail with their count and mean). The
    #: spacing sets how many values share a lump (a bin's values taken at their mean)
    tail_lo: float = -3.8125
    tail_step: float = 0.375
    tail_bins: int = 62
    #: width (log2) of the window below a value within which past values count in part toward
    #: its tail (a value must exceed past ones by about this much to be surprising about them);
    #: at most ``tail_step``
    tail_window: float = 0.3
    #: memory of the histograms in observations (decay 1 - 1/memory per observation)
    tail_memory: float = 5000.0
    #: a histogram gives no p-value before it has counted this many (decayed) observations
    tail_min_count: float = 30.0
    #: log10 probability lost per log2 of distance beyond the largest value on record (per
    #: ``tail_step`` in the run-length histograms)
    tail_beyond_log10: float = 1.0
    #: the same for the length of a run of repeated values, per edge step (0: a run longer than
    #: any on record is as surprising as the first repeat of a series that never repeats, and no
    #: more)
    stuck_beyond_log10: float = 0.0

    #: density feature: rate of the short average of -log10 p (point/level), its cap per point,
    #: and the lowest edge (log2) of its histogram
    density_rate: float = 0.1
    density_cap: float = 8.0
    density_lo: float = -5.8125

    #: a run of repeats counts as possibly stuck from this many repeats on (a couple of equal
    #: readings happen by rounding; QARTOD's flat-line test also waits for several)
    stuck_min_run: int = 5
    #: excursion test: a point is "away" while its level p-value is below 1/excursion_odds; the
    #: test is the length of the current run of such points against the series' finished runs
    excursion_odds: float = 100.0

    # --- output ------------------------------------------------------------------------
    #: -log10(p) (after the Bonferroni factor) that maps to score 1.0
    score_log10_full: float = 12.0
    #: multiplicity correction for the number of points a series has per day: p is multiplied by
    #: (points per day) ** day_power. 0 calibrates per point (a 1-minute series then raises 60x
    #: the false alarms per day of an hourly one at the same threshold), 1 per day; in between
    #: a compromise (0.1-0.35 score the same on the NAB subset, see docs/benchmarks.md)
    day_power: float = 0.25
    #: per-point decay of the running maximum of past surprise: a point scores only when its
    #: surprise exceeds that maximum, so an event is reported at its onset and while it grows
    onset_decay: float = 0.99
    #: points before a series is scored (score 0 while it learns)
    warmup_points: int = 100

    def __post_init__(self) -> None:
        if not 0.0 < self.tail_window <= self.tail_step:
            raise ValueError(
                f"tail_window must be > 0 and at most tail_step ({self.tail_step}), got {self.tail_window}"
            )


DEFAULT_CONFIG = DetectorConfig()
