"""Agronomic indices (pure numpy, vectorised): FAO-56 ET0 and crop water, thermal time, pig heat
stress, leaf wetness and disease risk, pond dissolved oxygen. Constants: ``analytics.agro.config``.
"""

from analytics.agro.et0 import et0_fao56_daily, et0_fao56_hourly, et0_hargreaves

__all__ = ["et0_fao56_daily", "et0_fao56_hourly", "et0_hargreaves"]
