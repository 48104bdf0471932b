"""The study's pickles, read without running pickle code.

The study publishes scikit-learn 1.5.2 pickles of ``KernelRidge(kernel="laplacian")``
(its calibrators) and a pickle of ``(mins, maxs)`` NumPy arrays (its
``globalminmax.pickle`` normalisation statistics). ``pickle.loads`` would run
whatever a crafted file names; :func:`restricted_loads` instead admits plain
data only: NumPy arrays and scalars of numeric dtypes (rebuilt from their raw
bytes, never by NumPy's own unpickling code), tuples, lists, dicts, floats,
ints, bools, strings, bytes and None. Classes the caller allows (here
``KernelRidge``) become inert stand-ins that only record their pickled state.
Everything else is refused with :class:`RestrictedPickleError`.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
from collections.abc import Iterable
from typing import Any

import numpy as np

from utils.calibration.calibrators import KERNELS, KernelRidgeCalibrator
from utils.errors import InputError

#: The scikit-learn class of the study's calibrators.
KERNEL_RIDGE = ("sklearn.kernel_ridge", "KernelRidge")

_NUMERIC_KINDS = "biuf"
_PLAIN = (type(None), bool, int, float, str, bytes)


class RestrictedPickleError(InputError):
    """A pickle that is malformed or holds anything but plain data and the allowed classes."""


class PickledObject:
    """Inert stand-in for an allowed class: ``state`` is what the pickle set (None if nothing)."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


# ----------------------------------------------------------------------------- numpy proxies


class _NDArrayType:
    """Stands for ``numpy.ndarray`` as the subtype argument of ``_reconstruct``."""


class _DtypeProxy:
    """Inert stand-in for a pickled numpy dtype (plain numeric dtypes only)."""

    def __init__(self, obj: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(obj, str) or len(obj) > 8:
            raise pickle.UnpicklingError(f"unsupported dtype spec {obj!r}")
        try:
            dt = np.dtype(obj)
        except TypeError as exc:
            raise pickle.UnpicklingError(f"unsupported dtype spec {obj!r}") from exc
        if dt.kind not in _NUMERIC_KINDS or dt.fields is not None or dt.subdtype:
            raise pickle.UnpicklingError(f"refusing non-numeric dtype {obj!r}")
        self.dtype = dt

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2:
            raise pickle.UnpicklingError("malformed dtype state")
        byteorder = state[1]
        if byteorder not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError(f"malformed dtype byte order {byteorder!r}")
        if any(s is not None for s in state[2:5]):
            raise pickle.UnpicklingError("refusing structured or sub-array dtype")
        if byteorder in "<>":
            self.dtype = self.dtype.newbyteorder(byteorder)


def _dtype_of(obj: Any) -> np.dtype:
    dtype = getattr(obj, "dtype", None) if isinstance(obj, _DtypeProxy) else None
    if dtype is None:
        raise pickle.UnpicklingError("array dtype is not a numpy dtype")
    return dtype


def _array(data: Any, dtype: np.dtype, shape: Any, fortran: bool) -> np.ndarray:
    """A native-byte-order copy of ``data`` (raw bytes) as an array of ``shape``."""
    if not isinstance(shape, tuple) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise pickle.UnpicklingError(f"malformed ndarray shape {shape!r}")
    if not isinstance(data, bytes | bytearray):
        raise pickle.UnpicklingError("ndarray data is not raw bytes")
    n = math.prod(shape)
    if len(data) != n * dtype.itemsize:
        raise pickle.UnpicklingError(
            f"ndarray data has {len(data)} bytes, expected {n * dtype.itemsize}"
        )
    arr = np.frombuffer(bytes(data), dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return arr.astype(dtype.newbyteorder("="), copy=True)


class _ArrayProxy:
    """Inert stand-in for a pickled numpy array, rebuilt from raw bytes."""

    def __init__(self, array: np.ndarray | None = None) -> None:
        self.array = array

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            raise pickle.UnpicklingError("ndarray state set twice")
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("malformed ndarray state")
        if len(state) == 5:
            state = state[1:]
        shape, dtype_proxy, fortran, data = state
        self.array = _array(data, _dtype_of(dtype_proxy), shape, bool(fortran))


def _safe_globals(allowed: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """The globals a pickle may name, as inert stand-ins.

    Fresh classes and functions per load, so that a crafted pickle that sets
    attributes on them (BUILD) cannot affect later loads.
    """
    nd_type = type("ndarray", (_NDArrayType,), {})

    def reconstruct(subtype: Any, shape: Any = None, typecode: Any = None) -> _ArrayProxy:
        if subtype is not nd_type:
            raise pickle.UnpicklingError("only plain numpy arrays can be reconstructed")
        return _ArrayProxy()

    def frombuffer(buf: Any, dtype_proxy: Any, shape: Any, order: Any) -> _ArrayProxy:
        if order not in ("C", "F"):
            raise pickle.UnpicklingError(f"malformed ndarray order {order!r}")
        return _ArrayProxy(_array(buf, _dtype_of(dtype_proxy), shape, order == "F"))

    def scalar(dtype_proxy: Any, data: Any = None) -> Any:
        dtype = _dtype_of(dtype_proxy)
        if not isinstance(data, bytes) or len(data) != dtype.itemsize:
            raise pickle.UnpicklingError("malformed numpy scalar")
        return np.frombuffer(data, dtype=dtype)[0].item()

    def encode(text: Any, encoding: Any = "utf-8") -> bytes:  # bytes in protocol 2
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError("only latin-1 text can be encoded to bytes")
        return text.encode("latin-1")

    found: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): nd_type,
        ("numpy", "dtype"): type("dtype", (_DtypeProxy,), {}),
        ("_codecs", "encode"): encode,
    }
    for module in ("numpy.core", "numpy._core"):
        found[(f"{module}.multiarray", "_reconstruct")] = reconstruct
        found[(f"{module}.multiarray", "scalar")] = scalar
        found[(f"{module}.numeric", "_frombuffer")] = frombuffer
    for module, name in allowed:
        found[(module, name)] = type(name, (PickledObject,), {})
    return found


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of :func:`_safe_globals`."""

    def __init__(self, file: io.BytesIO, allowed: Iterable[tuple[str, str]]) -> None:
        super().__init__(file)
        self._globals = _safe_globals(allowed)
        self._allowed = ", ".join(f"{m}.{n}" for m, n in allowed)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._globals[(module, name)]
        except KeyError:
            also = f" and {self._allowed}" if self._allowed else ""
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name} (only numpy arrays{also} "
                "are allowed)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing persistent ids")


def _plain(obj: Any, busy: set[int]) -> Any:
    """Proxies -> numpy objects, through tuples, lists, dicts and stand-ins' state."""
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, _ArrayProxy):
        if obj.array is None:
            raise pickle.UnpicklingError("incomplete ndarray in the pickle")
        return obj.array
    if isinstance(obj, _DtypeProxy):
        return _dtype_of(obj)
    if id(obj) in busy:
        raise pickle.UnpicklingError("refusing a structure that contains itself")
    busy.add(id(obj))
    try:
        if isinstance(obj, PickledObject):
            obj.state = _plain(obj.state, busy)
            return obj
        if type(obj) is list:
            return [_plain(v, busy) for v in obj]
        if type(obj) is tuple:
            return tuple(_plain(v, busy) for v in obj)
        if type(obj) is dict:
            return {_plain(k, busy): _plain(v, busy) for k, v in obj.items()}
    finally:
        busy.discard(id(obj))
    raise pickle.UnpicklingError(f"refusing a {type(obj).__name__}: not plain data")


def restricted_loads(data: bytes, allowed: Iterable[tuple[str, str]] = ()) -> Any:
    """Unpickle ``data`` admitting plain data only; nothing in it is executed.

    Returns NumPy arrays (numeric dtypes, native byte order) and Python floats,
    ints, bools, strings, bytes and None, inside tuples, lists and dicts. Each
    ``(module, name)`` in ``allowed`` (e.g. :data:`KERNEL_RIDGE`) may appear as an
    instance of an inert :class:`PickledObject` subclass named ``name``. Raises
    :class:`RestrictedPickleError` for anything else and for malformed data.
    """
    allowed = tuple(allowed)
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), allowed).load()
        return _plain(obj, set())
    except pickle.UnpicklingError as exc:
        raise RestrictedPickleError(f"unsafe or malformed pickle: {exc}") from exc
    except (EOFError, TypeError, ValueError, KeyError, IndexError, AttributeError,
            OverflowError, MemoryError, RecursionError, struct.error) as exc:
        raise RestrictedPickleError(
            f"corrupt or truncated pickle ({type(exc).__name__}: {exc})") from exc


# ----------------------------------------------------------------------------- KernelRidge


def _meta_value(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if v is None or isinstance(v, bool | int | float | str):
        return v
    return repr(type(v).__name__)


def _kernel_ridge_from_state(state: dict[str, Any]) -> KernelRidgeCalibrator:
    for key in ("X_fit_", "dual_coef_"):
        if key not in state:
            raise ValueError(f"the KernelRidge is not fitted (no {key})")
    kernel = state.get("kernel", "linear")
    if not isinstance(kernel, str):
        raise ValueError(f"unsupported kernel {kernel!r} (a callable or non-string)")
    if kernel not in KERNELS:
        raise ValueError(f"unsupported kernel {kernel!r}; supported: {', '.join(KERNELS)}")
    if state.get("kernel_params"):
        raise ValueError(f"unsupported kernel_params {state['kernel_params']!r}")
    gamma = state.get("gamma")
    if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, int | float)):
        raise ValueError(f"unsupported gamma {gamma!r}")
    x, c = state["X_fit_"], state["dual_coef_"]
    if not isinstance(x, np.ndarray) or not isinstance(c, np.ndarray):
        raise ValueError("X_fit_ and dual_coef_ must be numpy arrays")
    if c.ndim == 2 and c.shape[1] != 1:
        raise ValueError(f"multi-target KernelRidge (dual_coef_ {c.shape}) is not supported")
    meta: dict[str, Any] = {"source": "sklearn-pickle"}
    for key in ("alpha", "degree", "coef0", "_sklearn_version", "n_features_in_"):
        if key in state:
            meta[key.lstrip("_")] = _meta_value(state[key])
    return KernelRidgeCalibrator(x, c, kernel=kernel, gamma=gamma, meta=meta)


def kernel_ridge_from_pickle(data: bytes) -> KernelRidgeCalibrator:
    """The calibrator in a scikit-learn ``KernelRidge`` pickle (bytes), without scikit-learn.

    Raises ValueError (:class:`RestrictedPickleError` for unsafe or corrupt data)
    when ``data`` is not a fitted KernelRidge with a kernel of :data:`KERNELS`.
    """
    obj = restricted_loads(data, allowed=(KERNEL_RIDGE,))
    if not isinstance(obj, PickledObject) or type(obj).__name__ != KERNEL_RIDGE[1]:
        raise ValueError(f"the pickle holds a {type(obj).__name__}, not a KernelRidge")
    if obj.state is None:
        raise ValueError("the KernelRidge pickle has no state")
    if not isinstance(obj.state, dict):
        raise ValueError(f"the KernelRidge state is a {type(obj.state).__name__}, not a dict")
    return _kernel_ridge_from_state(obj.state)
