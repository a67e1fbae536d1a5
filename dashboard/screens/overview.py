"""The overview page script, run by st.navigation (dashboard/app.py); layout in views/overview.py."""

from dashboard import ui
from dashboard.views import overview

ui.guarded(overview.page, ui.current_lang())
