"""`agri flash`: build the node firmware, copy it and the node config to a board, verify, reset.

Pure parts (config validation, build manifest, plan, comparisons) are separate from the device
I/O (:mod:`agri.flash.device`, mpremote's serial transport underneath) and the broker wait
(:mod:`agri.flash.first_message`). :mod:`agri.flash.flasher` runs the steps in order.
"""

from agri.flash.errors import FlashError

__all__ = ["FlashError"]
