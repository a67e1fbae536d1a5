"""Page scripts (one per page) that st.navigation runs; they only call the views inside the guard."""
