"""The alerts page script, run by st.navigation (dashboard/app.py); layout in dashboard/views/alerts.py."""

from dashboard import ui
from dashboard.views import alerts

ui.guarded(alerts.page, ui.current_lang())
