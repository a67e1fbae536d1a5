# Node entry point (/main.py on a board; the code is in /lib/agrinode). See firmware/README.md.
from agrinode.app import main

main()
