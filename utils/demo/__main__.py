"""``python -m utils.demo --out demo``: the whole chain on generated data (``make demo``)."""

import sys

from utils.demo.driver import main

sys.exit(main())
