"""The HTTP API service (FastAPI) and the HTTP-free query functions it and the dashboard use."""
