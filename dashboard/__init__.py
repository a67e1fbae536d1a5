"""The Streamlit dashboard: overview map, farm pages, alerts (``agri dashboard``).

Layout only lives in the page scripts (``dashboard/views``); data comes from the API's HTTP-free
query functions through :mod:`dashboard.data`, which can be used and tested without Streamlit.
"""
