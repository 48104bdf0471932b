"""What every command line of the project does with a run: used only by the CLIs.

An input error (:class:`utils.errors.InputError`, a missing or unreadable file)
is one line on stderr, ``PROG: error: ...`` with the request fields said as the
command's flags, and exit status 2; Ctrl-C is one line and status 130. Bugs keep
their traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from utils.errors import InputError, cli_message


def run_cli(prog: str, work: Callable[[], Any],
            flags: dict[str, str] | None = None) -> tuple[int, Any]:
    """``(0, work())``, or ``(2, None)`` / ``(130, None)`` after saying why on stderr."""
    try:
        return 0, work()
    except (InputError, FileNotFoundError, PermissionError) as e:
        print(f"{prog}: error: {cli_message(e, flags)}", file=sys.stderr)
        return 2, None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; no output written", file=sys.stderr)
        return 130, None


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``PROG: error: ...``), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")
