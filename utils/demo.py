"""`make demo`: the whole study chain on the generated demo dataset."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("make demo: not yet — the demo chain arrives with the data and main-notebook issues.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
