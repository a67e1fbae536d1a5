"""One module per page; each has ``page()``, run by ``dashboard/app.py`` through st.navigation."""
