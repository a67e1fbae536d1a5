"""agri/cli."""
