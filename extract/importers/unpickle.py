"""Restricted unpickling: load a pickle that may hold only containers, numbers, strings and numpy arrays.

Unpickling runs whatever callables the file names, so a downloaded pickle could execute code.
This loader resolves only numpy's array/dtype reconstructors and a few builtin containers; every
other global is replaced by an inert placeholder so that loading continues, and all such names
are then reported at once in one StoreError (nothing of theirs is ever imported or called).

Even the allowed callables are guarded, because they can corrupt memory or exhaust it without
running code: an array of object dtype (pointers) is never built from raw bytes (``ndarray(shape,
dtype('O'), buffer)``, ``_frombuffer``, an array's pickled state, a dtype whose fields hide an
object type), and what a call builds beyond the file's own bytes (``list(range(N))``,
``bytes(N)``, ``ndarray(shape)``) is bounded by ``UnpickleLimits`` (``--unpickle.*`` flags for
trusted giant files). The pure-Python unpickler is used so that BUILD (``__setstate__``) can be
checked; data pickles are few large byte strings, so it costs little.
"""
from __future__ import annotations

import codecs
import collections
import dataclasses
import importlib
import math
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ebmc.store import StoreError
from ebmc.store.fingerprint import setting

# (module, name) pairs a data pickle legitimately needs. numpy >= 2 writes ``numpy._core``;
# numpy 1.x writes ``numpy.core``; both resolve to the same functions.
_NUMPY = {"_reconstruct", "scalar", "_frombuffer", "ndarray", "dtype"}
_NUMPY_MODULES = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric"}
_BUILTINS = {"set", "frozenset", "bytearray", "complex", "list", "dict", "tuple", "bytes", "str",
             "int", "float", "bool", "slice", "range"}
_SIZED = {"set", "frozenset", "bytearray", "list", "dict", "tuple", "bytes"}  # build as many items as asked
# protocol-2 pickles spell bytes (numpy's raw array data) as _codecs.encode(text, "latin1")
_OTHER = {("collections", "OrderedDict"): collections.OrderedDict, ("_codecs", "encode"): codecs.encode}

HINT = ("only containers, numbers, strings and numpy arrays are loaded, because unpickling can run "
        "code; if you trust this file, re-save it in a separate Python session as a plain dict of "
        "numpy arrays (e.g. convert DataFrames with .to_numpy(), tensors with .numpy())")


@dataclasses.dataclass(frozen=True)
class UnpickleLimits:
    """Bounds on what one call inside a pickle may build beyond the file's own bytes."""

    max_elements: int = setting(10 ** 8, "most items one container or array built by a call in the pickle may have "
                                "(raise it only for a trusted file)")
    max_bytes: int = setting(2 ** 32, "most bytes one array or byte string built by a call in the pickle may take "
                             "(raise it only for a trusted file)")


class Refused(ValueError):
    """The pickle asks for something unsafe (object arrays from bytes, a huge expansion)."""


def _has_object(dt: np.dtype) -> bool:
    """Whether ``dt`` holds Python object pointers anywhere, judged from its fields, not its flags
    (a pickled dtype state can claim no objects while a field is of object type)."""
    if dt.kind == "O":
        return True
    if dt.subdtype is not None and _has_object(dt.subdtype[0]):
        return True
    return any(_has_object(f[0]) for f in (dt.fields or {}).values())


def _no_objects_from_bytes(dtype: Any, what: str) -> None:
    dt = np.dtype(dtype) if not isinstance(dtype, np.dtype) else dtype
    if _has_object(dt) or dt.hasobject:
        raise Refused(f"{what} of object dtype from raw bytes: that would turn bytes into memory pointers")


class _Guard:
    """The allowed numpy and builtin callables, wrapped with the checks of the module docstring."""

    def __init__(self, limits: UnpickleLimits):
        self.limits = limits
        guard = self

        class Array(np.ndarray):
            """``numpy.ndarray`` as named in a pickle: a checked constructor, and the subtype
            ``_reconstruct`` is given (it then builds a plain ndarray)."""

            def __new__(cls, *args, **kwargs):
                return guard.ndarray(*args, **kwargs)

        self.array_type = Array

    def count(self, n: int, itemsize: int, what: str) -> None:
        if n > self.limits.max_elements or n * itemsize > self.limits.max_bytes:
            raise Refused(f"{what} would build {n} items ({n * itemsize} bytes), beyond --unpickle.max_elements "
                          f"{self.limits.max_elements} / --unpickle.max_bytes {self.limits.max_bytes}; raise them "
                          "only if you trust this file")

    def shape(self, shape: Any, dtype: Any, what: str) -> None:
        dims = (shape,) if isinstance(shape, int) else tuple(shape)
        if any(not isinstance(d, int) or d < 0 for d in dims):
            raise Refused(f"{what}: shape {shape!r} is not a tuple of sizes")
        n = math.prod(dims)
        self.count(n, np.dtype(dtype).itemsize if dtype is not None else 8, what)

    def ndarray(self, shape, dtype=float, buffer=None, *args, **kwargs):
        if buffer is not None:
            _no_objects_from_bytes(dtype, "ndarray")
        else:
            self.shape(shape, dtype, "ndarray")
        return np.ndarray(shape, dtype, buffer, *args, **kwargs)

    def reconstruct(self, subtype, shape, dtype):
        self.shape(shape, None, "_reconstruct")
        return _numpy("_reconstruct")(np.ndarray if subtype is self.array_type else subtype, shape, dtype)

    def frombuffer(self, buf, dtype, *args, **kwargs):
        _no_objects_from_bytes(dtype, "_frombuffer")
        return _numpy("_frombuffer", "numeric")(buf, dtype, *args, **kwargs)

    def scalar(self, dtype, *args):
        if args and isinstance(args[0], (bytes, bytearray)):
            _no_objects_from_bytes(dtype, "scalar")
        return _numpy("scalar")(dtype, *args)

    def sized(self, build: Callable) -> Callable:
        def guarded(*args, **kwargs):
            if args:
                first = args[0]
                n = first if isinstance(first, int) and build in (bytes, bytearray) else \
                    len(first) if hasattr(first, "__len__") else 0
                self.count(int(n), 1, f"{getattr(build, '__name__', build)}(...)")
            return build(*args, **kwargs)
        return guarded

    def build_state(self, inst: Any, state: Any) -> None:
        """Checks before ``inst.__setstate__(state)`` (the BUILD opcode) of an array."""
        if isinstance(inst, np.ndarray) and isinstance(state, tuple) and len(state) == 5:
            _, shape, dtype, _, data = state
            if isinstance(dtype, np.dtype) and not isinstance(data, list):
                _no_objects_from_bytes(dtype, "array state")


def _numpy(name: str, module: str = "multiarray") -> Any:
    """numpy's own reconstructor ``name`` (in ``numpy._core`` from numpy 2, ``numpy.core`` before)."""
    try:
        return getattr(importlib.import_module(f"numpy._core.{module}"), name)
    except (ImportError, AttributeError):
        return getattr(importlib.import_module(f"numpy.core.{module}"), name)


class _Blocked:
    """Stands in for a refused class or function: accepts any construction and state, does nothing."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __call__(self, *args, **kwargs):
        return _Blocked()


class RestrictedUnpickler(pickle._Unpickler):
    """An Unpickler whose ``find_class`` allows only guarded numpy arrays/dtypes and builtin containers.

    Refused globals are collected in ``self.refused`` (``"module.name"``, sorted on report).
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, limits: UnpickleLimits = UnpickleLimits(), **kwargs):
        super().__init__(file, **kwargs)
        self.refused: set[str] = set()
        self.guard = _Guard(limits)

    def find_class(self, module: str, name: str) -> Any:
        if name in _NUMPY and module in _NUMPY_MODULES:
            return {"ndarray": self.guard.array_type, "_reconstruct": self.guard.reconstruct,
                    "_frombuffer": self.guard.frombuffer, "scalar": self.guard.scalar, "dtype": np.dtype}[name]
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            built = getattr(importlib.import_module("builtins"), name)
            return self.guard.sized(built) if name in _SIZED else built
        if (module, name) in _OTHER:
            built = _OTHER[(module, name)]
            return self.guard.sized(built) if built is collections.OrderedDict else built
        self.refused.add(f"{module}.{name}")
        return type(name, (_Blocked,), {"__module__": "ebmc.refused." + module})

    def _load_build(self) -> None:
        self.guard.build_state(self.stack[-2], self.stack[-1])
        pickle._Unpickler.load_build(self)
        built = self.stack[-1]
        if isinstance(built, np.dtype) and _has_object(built) != built.hasobject:
            raise Refused("a dtype whose state hides an object field: that would turn bytes into memory pointers")

    dispatch[pickle.BUILD[0]] = _load_build


def restricted_load(path: str | Path, limits: UnpickleLimits = UnpickleLimits()) -> Any:
    """Load the pickle at ``path`` with the restricted unpickler.

    Raises StoreError naming every refused class/function and how to convert the file, or why
    the file is unreadable or unsafe; never anything else.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such file; give the path of the pickle to import")
    with open(path, "rb") as f:
        unpickler = RestrictedUnpickler(f, limits, encoding="latin1")  # latin1: Python-2 numpy pickles
        try:
            obj = unpickler.load()
        except Refused as e:
            raise StoreError(f"{path}: refused to load: {e}") from None
        except MemoryError:
            raise StoreError(f"{path}: loading it needs more memory than this machine has; "
                             "check that it is the right file") from None
        except Exception as e:  # noqa: BLE001 - any malformed stream (bad opcode, memo, stack) is unreadable
            raise StoreError(f"{path}: not a readable pickle ({type(e).__name__}: {e}); "
                             "check that the download is complete (compare its SHA-256)") from None
    if unpickler.refused:
        problems = [f"{name}: not a container, number, string or numpy array" for name in sorted(unpickler.refused)]
        raise StoreError(f"{path}: refused to load {len(problems)} kind(s) of pickled object; {HINT}", problems)
    return obj
