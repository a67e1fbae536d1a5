"""agri."""
