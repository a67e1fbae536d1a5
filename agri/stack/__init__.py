"""agri/stack."""
