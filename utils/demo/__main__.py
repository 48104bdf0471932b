"""``python -m utils.demo [--out demo] [--only SYSTEM]``: the whole chain and the other
systems' demos on generated data (``make demo``)."""

import sys

from utils.demo.driver import main

sys.exit(main())
