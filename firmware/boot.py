# Runs before main.py on a board. Modules live in /lib (compiled .mpy); nothing else to do here
# so that a broken main.py still leaves the REPL reachable for `agri flash`.
