"""Agronomic indices (pure numpy, vectorised): FAO-56 ET0 and crop water, thermal time, pig heat
stress, leaf wetness and disease risk, pond dissolved oxygen. Constants: ``analytics.agro.config``.
"""

from analytics.agro.config import CROPS, DISEASE_RULES, THI_BANDS, Crop, DiseaseRule
from analytics.agro.crop_water import WaterBalance, kc_climate_adjusted, kc_curve, soil_water_balance
from analytics.agro.disease import WetPeriods, risk_level, wet_hours, wet_periods
from analytics.agro.durations import hours_in_band, longest_run_hours, per_day
from analytics.agro.et0 import et0_fao56_daily, et0_fao56_hourly, et0_hargreaves
from analytics.agro.livestock import (
    same_hours_totals,
    thi_band,
    thi_nrc1971,
    water_drop,
    water_drop_same_hours,
)
from analytics.agro.pond import DawnForecast, dawn_do_at_readings, dawn_do_forecast, hours_below, night_bounds
from analytics.agro.thermal import chill_hours, degree_days, frost_hours, gdd_daily, longest_frost_hours

__all__ = [
    "CROPS",
    "DISEASE_RULES",
    "THI_BANDS",
    "Crop",
    "DawnForecast",
    "DiseaseRule",
    "WaterBalance",
    "WetPeriods",
    "chill_hours",
    "dawn_do_at_readings",
    "dawn_do_forecast",
    "degree_days",
    "et0_fao56_daily",
    "et0_fao56_hourly",
    "et0_hargreaves",
    "frost_hours",
    "gdd_daily",
    "hours_below",
    "hours_in_band",
    "kc_climate_adjusted",
    "kc_curve",
    "longest_frost_hours",
    "longest_run_hours",
    "night_bounds",
    "per_day",
    "risk_level",
    "same_hours_totals",
    "soil_water_balance",
    "thi_band",
    "thi_nrc1971",
    "water_drop",
    "water_drop_same_hours",
    "wet_hours",
    "wet_periods",
]
