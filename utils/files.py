"""One way to write an output file: checked up front, written beside it, renamed on success.

``check_output`` runs before any work (folder exists and is writable, the name is
not too long for the file system, the file is not an input, it does not exist
unless replacing was asked for). ``atomic_output`` yields a reserved temporary
path in the same folder and publishes it under the final name only when the block
succeeds; on any failure, Ctrl-C or SIGTERM every temporary file it started
(``.<name>.<hex>.tmp*``) is removed and nothing half-written is left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from utils.errors import OutputError, OutputExistsError

# Longest suffix a writer adds to a temporary name: ".<8 hex>.tmp" plus sidecars
# such as ".src.tif" or ".aux.xml" (GDAL PAM of a temporary ".src.tif").
TEMP_SUFFIX_MAX = len(".0123abcd.tmp") + len(".src.tif.aux.xml")


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_output(path: str | os.PathLike, overwrite: bool = False, what: str = "output",
                 inputs: Sequence[str | os.PathLike | None] = ()) -> Path:
    """Check before any work that ``path`` can be written; returns its absolute path.

    Raises OutputError when its folder is missing or not writable, the name (or the
    temporary name written first) is too long, or it is a folder or one of
    ``inputs``; OutputExistsError when it exists and ``overwrite`` is false.
    """
    target = Path(path).absolute()
    folder = target.parent
    limit = _name_max(folder) if folder.is_dir() else 255
    if len(os.fsencode(target.name)) + 1 + TEMP_SUFFIX_MAX > limit:
        raise OutputError(errno.ENAMETOOLONG,
                          f"{what} file name is too long ({len(target.name)} characters; "
                          f"at most {limit - 1 - TEMP_SUFFIX_MAX} here)", str(path))
    if not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise OutputError(errno.ENOENT, f"output folder {folder} of {what} {why}", str(path))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(errno.EACCES, f"output folder {folder} of {what} is not writable",
                          str(path))
    if target.is_dir():
        raise OutputError(errno.EISDIR, f"{what} is a folder", str(path))
    if target.exists():
        for p in inputs:
            if p is not None and Path(p).exists() and os.path.samefile(target, p):
                raise OutputError(errno.EEXIST, f"{what} would overwrite an input file",
                                  str(path))
        if not overwrite:
            raise OutputExistsError(errno.EEXIST, f"{what} exists; pass overwrite to replace "
                                    "it", str(path)).about("overwrite")
    return target


# ----------------------------------------------------------------------------- SIGTERM


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM while an atomic output is open."""


_guard_lock = threading.Lock()
_guard_depth = 0
_guard_previous: object = None


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated(128 + signum)


@contextlib.contextmanager
def sigterm_cleans_up() -> Iterator[None]:
    """Turn SIGTERM into an exception (so ``finally`` blocks run) while open."""
    global _guard_depth, _guard_previous
    main = threading.current_thread() is threading.main_thread()
    installed = False
    if main:
        with _guard_lock:
            if _guard_depth == 0 and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                _guard_previous = signal.signal(signal.SIGTERM, _on_sigterm)
                installed = True
            if installed or _guard_depth:
                _guard_depth += 1
                installed = True
    try:
        yield
    finally:
        if installed:
            with _guard_lock:
                _guard_depth -= 1
                if _guard_depth == 0:
                    signal.signal(signal.SIGTERM, _guard_previous or signal.SIG_DFL)


# ----------------------------------------------------------------------------- writing


def reserve_temp(target: Path) -> Path:
    """Create an empty, uniquely named ``.<name>.<hex>.tmp`` beside ``target``."""
    folder = target.parent
    for _ in range(100):
        tmp = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        except OSError as e:
            raise OutputError(e.errno or errno.EACCES,
                              f"cannot write in output folder {folder}: {e.strerror or e}",
                              str(target)) from e
        os.close(fd)
        return tmp
    raise OutputError(errno.EEXIST, f"no free temporary name in {folder}", str(target))


def publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Rename ``tmp`` to ``target``; without ``overwrite`` never replace an existing file."""
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise OutputExistsError(errno.EEXIST, "was created meanwhile (by another run?); pass "
                                "overwrite to replace it", str(target)).about("overwrite") from None
    except OSError:  # no hard links on this file system: check, then rename
        if target.exists():
            raise OutputExistsError(errno.EEXIST, "was created meanwhile (by another run?); "
                                    "pass overwrite to replace it", str(target)
                                    ).about("overwrite") from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def _remove_temps(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        for name in os.listdir(tmp.parent):
            if name.startswith(tmp.name):
                with contextlib.suppress(OSError):
                    (tmp.parent / name).unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False,
                  sidecars: Callable[[Path], dict[Path, Path]] | None = None,
                  what: str = "output") -> Iterator[Path]:
    """Yield a reserved temporary path beside ``path``; publish it when the block succeeds.

    ``sidecars(tmp)`` (called after the block) returns ``{final path: temporary file}``
    of files that accompany the output; they are published with it. Temporary
    files must start with the yielded name. On failure (an exception, Ctrl-C or
    SIGTERM) every such file is removed and what this call already published is
    taken back; an existing ``path`` is replaced only when ``overwrite`` is true.
    """
    target = check_output(path, overwrite, what)
    with sigterm_cleans_up():
        tmp = reserve_temp(target)
        published: list[Path] = []
        try:
            yield tmp
            extra = sidecars(tmp) if sidecars is not None else {}
            publish(tmp, target, overwrite)
            published.append(target)
            for final, src in extra.items():
                os.replace(src, final)
                published.append(final)
        except BaseException:
            _remove_temps(tmp)
            if not overwrite:  # what we published is ours alone: take it back
                for p in published:
                    with contextlib.suppress(OSError):
                        p.unlink()
            raise
