"""Every constant and default threshold of the agronomic indices, in one place, with its source.

FAO-56 = Allen, Pereira, Raes & Smith (1998), *Crop evapotranspiration*, FAO Irrigation and
Drainage Paper 56 (equation and table numbers refer to it). Bands and rule tables are defaults
meant to be replaced per farm; the functions take them as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

# --- FAO-56 physical constants --------------------------------------------------------------
GSC = 0.0820  # solar constant, MJ m-2 min-1 (Eq. 21)
SIGMA_DAY = 4.903e-9  # Stefan-Boltzmann, MJ K-4 m-2 day-1 (Eq. 39)
SIGMA_HOUR = SIGMA_DAY / 24  # 2.043e-10 MJ K-4 m-2 hour-1 (Eq. 53 box)
ALBEDO = 0.23  # grass reference albedo (Eq. 38)
ANGSTROM_AS = 0.25  # Angstrom coefficients when not calibrated (Eq. 35)
ANGSTROM_BS = 0.50
KRS_INTERIOR = 0.16  # Hargreaves radiation adjustment, interior locations (Eq. 50)
KRS_COASTAL = 0.19  # coastal locations (Eq. 50)
DEFAULT_U2 = 2.0  # m/s, FAO-56 ch. 3 "missing wind speed data"
KELVIN = 273.16  # FAO-56 uses 273.16 in the radiation terms and 273 in the aerodynamic term
HOURLY_G_DAY = 0.1  # G = 0.1 Rn in daylight (Eq. 45)
HOURLY_G_NIGHT = 0.5  # G = 0.5 Rn at night (Eq. 46)
#: Rs/Rso for night periods when no period 2-3 h before sunset precedes them in the series
#: (FAO-56 Example 19 uses 0.8 for its night hour)
RS_RSO_NIGHT_DEFAULT = 0.8
#: night periods take Rs/Rso from the latest daytime period whose midpoint lies this many hours
#: before sunset (FAO-56 ch. 4, hourly time step: "2-3 hours before sunset")
NIGHT_RATIO_WINDOW_H = (2.0, 3.0)

# --- input sanity ranges (a value outside one is a unit mistake, not weather) ------------------
RANGES = MappingProxyType(
    {
        "tmax": (-60.0, 65.0),
        "tmin": (-60.0, 65.0),
        "t": (-60.0, 65.0),
        "rh_max": (0.0, 105.0),  # sensors overshoot 100 % a little; clipped to 100
        "rh_min": (0.0, 105.0),
        "rh": (0.0, 105.0),
        "ea": (0.0, 8.0),  # kPa (a value in hPa would be 10x larger)
        "u2": (0.0, 50.0),
        "rs_day": (0.0, 45.0),  # MJ m-2 day-1 (W/m2 would be ~10x larger)
        "rs_hour": (0.0, 5.0),  # MJ m-2 hour-1
        "n_hours": (0.0, 24.0),
        "lat_deg": (-90.0, 90.0),
        "lon_deg": (0.0, 360.0),
        "elevation_m": (-450.0, 9000.0),
        "doy": (1.0, 366.0),
        "hour_mid": (0.0, 24.0),
        "rs_rso": (0.0, 1.0),
        "g": (-20.0, 20.0),
    }
)


# --- crop coefficients (FAO-56 Table 12) and stage lengths (Table 11) ------------------------
@dataclass(frozen=True, slots=True)
class Crop:
    """FAO-56 single crop coefficients and root-zone parameters of one crop."""

    name: str
    kc_ini: float
    kc_mid: float
    kc_end: float
    #: stage lengths in days: initial, development, mid-season, late season (Table 11)
    stages_days: tuple[int, int, int, int]
    height_m: float  # maximum crop height (Table 12), used by the Kc climate adjustment
    root_depth_m: float  # effective rooting depth Zr (Table 22, within its range)
    p: float  # soil water depletion fraction for no stress at ETc = 5 mm/day (Table 22)


CROPS: MappingProxyType[str, Crop] = MappingProxyType(
    {
        # Citrus, no ground cover (Table 12); Mediterranean stage lengths 60/90/120/95 (Table 11)
        "citrus_70": Crop("citrus_70", 0.70, 0.65, 0.70, (60, 90, 120, 95), 4.0, 1.35, 0.50),
        "citrus_50": Crop("citrus_50", 0.65, 0.60, 0.65, (60, 90, 120, 95), 3.0, 1.3, 0.50),
        "citrus_20": Crop("citrus_20", 0.50, 0.45, 0.55, (60, 90, 120, 95), 2.0, 0.95, 0.50),
        # Citrus with active ground cover or weeds (Table 12)
        "citrus_70_cover": Crop("citrus_70_cover", 0.75, 0.70, 0.75, (60, 90, 120, 95), 4.0, 1.35, 0.50),
        "citrus_50_cover": Crop("citrus_50_cover", 0.80, 0.80, 0.80, (60, 90, 120, 95), 3.0, 1.3, 0.50),
        "citrus_20_cover": Crop("citrus_20_cover", 0.85, 0.85, 0.85, (60, 90, 120, 95), 2.0, 0.95, 0.50),
        # Tea (Table 12). Table 11 gives no tea stage lengths: the year is split like citrus;
        # Kc barely changes over the year, so the split matters little. Set it per garden.
        "tea": Crop("tea", 0.95, 1.00, 1.00, (60, 90, 120, 95), 1.5, 1.2, 0.40),
        "tea_shaded": Crop("tea_shaded", 1.10, 1.15, 1.15, (60, 90, 120, 95), 2.0, 1.2, 0.45),
    }
)

# --- thermal time -----------------------------------------------------------------------------
GDD_BASE_CITRUS_C = 13.0  # citrus growth base temperature (≈ 12.5-13 °C)
CHILL_LO_C = 0.0  # chill hours: 0 < T <= 7.2 °C ("0-7.2 °C model", Weinberger 1950)
CHILL_HI_C = 7.2
FROST_CITRUS_FRUIT_C = -2.2  # citrus fruit freezes at -2.2 … -3.3 °C held for hours
FROST_TEA_BUDS_C = -2.0  # tea buds are damaged near -2 °C

# --- pig heat stress --------------------------------------------------------------------------
#: THI bands (lower bounds): the Livestock Weather Safety Index categories (LCI 1970, used with
#: the NRC 1971 THI): normal < 75, alert 75-78, danger 79-83, emergency >= 84.
THI_BANDS: tuple[tuple[str, float], ...] = (
    ("normal", float("-inf")),
    ("alert", 75.0),
    ("danger", 79.0),
    ("emergency", 84.0),
)
WATER_BASELINE_DAYS = 7  # a pen's own previous days compared against
WATER_MIN_BASELINE_DAYS = 3  # fewer valid previous days: not evaluated
WATER_DROP_ALERT = 0.20  # today below the baseline median by this fraction or more: alert
WATER_SAME_HOURS_H = 6.0  # the alert service compares the last hours with the same hours of past days

# --- leaf wetness and disease -----------------------------------------------------------------
LEAF_WET_THRESHOLD_PCT = 50.0  # leaf_wet sensor reading counted as "wet"
RH_WET_THRESHOLD_PCT = 90.0  # without a wetness sensor, RH >= 90 % counts as wet


@dataclass(frozen=True, slots=True)
class DiseaseRule:
    """A wet period of at least ``wet_hours`` at a mean temperature in ``[t_lo, t_hi)``: ``level``."""

    t_lo: float
    t_hi: float
    wet_hours: float
    level: int  # 1 low, 2 moderate, 3 high


#: Illustrative rule tables for fungal infection (hours of leaf wetness x temperature band).
#: Citrus: after infection windows reported for Alternaria brown spot and citrus scab (roughly
#: 8-12 h wetness at 20-28 °C); tea: blister blight (Exobasidium vexans) favoured by long wet
#: periods at 15-25 °C. Calibrate with the local plant-protection station before relying on them.
DISEASE_RULES: MappingProxyType[str, tuple[DiseaseRule, ...]] = MappingProxyType(
    {
        "citrus_fungal": (
            DiseaseRule(15.0, 32.0, 6.0, 1),
            DiseaseRule(18.0, 30.0, 10.0, 2),
            DiseaseRule(20.0, 28.0, 12.0, 3),
        ),
        "tea_blister_blight": (
            DiseaseRule(12.0, 28.0, 6.0, 1),
            DiseaseRule(15.0, 25.0, 11.0, 2),
            DiseaseRule(17.0, 24.0, 16.0, 3),
        ),
    }
)
#: dry breaks shorter than this do not end a wet period (hours)
WET_BREAK_H = 2.0

# --- pond dissolved oxygen --------------------------------------------------------------------
DO_LOW_MGL = 3.0  # keep dissolved oxygen above 3 mg/L
