#!/usr/bin/env python
"""Map glacier facies in a whole scene inside glacier outlines.

Usage (the study's interface):
    python apply.py MODEL_NAME RASTER OUTPUT OUTLINES [options]

Not yet implemented: filled by the apply.py issue (issue 6).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    print("apply.py: not yet implemented (see issue 6)", file=sys.stderr)
    sys.exit(2)
