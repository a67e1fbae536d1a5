"""The farm page script, run by st.navigation (dashboard/app.py); layout in dashboard/views/farm.py."""

from dashboard import ui
from dashboard.views import farm

ui.guarded(farm.page, ui.current_lang())
