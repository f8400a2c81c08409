"""Restricted unpickling: load a pickle that may hold only containers, numbers, strings and numpy arrays.

Unpickling runs whatever callables the file names, so a downloaded pickle could execute code.
This loader resolves only numpy's array/dtype reconstructors and a few builtin containers; every
other global is replaced by an inert placeholder so that loading continues, and all such names
are then reported at once in one StoreError (nothing of theirs is ever imported or called).
"""
from __future__ import annotations

import codecs
import collections
import importlib
import pickle
from pathlib import Path
from typing import Any

from ebmc.store import StoreError

# (module, name) pairs a data pickle legitimately needs. numpy >= 2 writes ``numpy._core``;
# numpy 1.x writes ``numpy.core``; both resolve to the same functions.
_NUMPY = {"_reconstruct", "scalar", "_frombuffer", "ndarray", "dtype"}
_NUMPY_MODULES = {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric"}
_BUILTINS = {"set", "frozenset", "bytearray", "complex", "list", "dict", "tuple", "bytes", "str",
             "int", "float", "bool", "slice", "range"}
# protocol-2 pickles spell bytes (numpy's raw array data) as _codecs.encode(text, "latin1")
_OTHER = {("collections", "OrderedDict"): collections.OrderedDict, ("_codecs", "encode"): codecs.encode}

HINT = ("only containers, numbers, strings and numpy arrays are loaded, because unpickling can run "
        "code; if you trust this file, re-save it in a separate Python session as a plain dict of "
        "numpy arrays (e.g. convert DataFrames with .to_numpy(), tensors with .numpy())")


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


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose ``find_class`` allows only numpy arrays/dtypes and builtin containers.

    Refused globals are collected in ``self.refused`` (``"module.name"``, sorted on report).
    """

    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        self.refused: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        if name in _NUMPY and module in _NUMPY_MODULES:
            if module.startswith("numpy._core"):
                try:
                    return getattr(importlib.import_module(module), name)
                except (ImportError, AttributeError):  # numpy 1.x without the _core shim
                    module = module.replace("numpy._core", "numpy.core")
            return getattr(importlib.import_module(module), name)
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return getattr(importlib.import_module("builtins"), name)
        if (module, name) in _OTHER:
            return _OTHER[(module, name)]
        self.refused.add(f"{module}.{name}")
        return type(name, (_Blocked,), {"__module__": "ebmc.refused." + module})


def restricted_load(path: str | Path) -> Any:
    """Load the pickle at ``path`` with the restricted unpickler.

    Raises StoreError naming every refused class/function and how to convert the file.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such file; give the path of the pickle to import")
    with open(path, "rb") as f:
        unpickler = RestrictedUnpickler(f, encoding="latin1")  # latin1: Python-2 numpy pickles
        try:
            obj = unpickler.load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
            raise StoreError(f"{path}: not a readable pickle ({type(e).__name__}: {e}); "
                             "check that the download is complete (compare its SHA-256)") from e
    if unpickler.refused:
        problems = [f"{name}: not a container, number, string or numpy array" for name in sorted(unpickler.refused)]
        raise StoreError(f"{path}: refused to load {len(problems)} kind(s) of pickled object; {HINT}", problems)
    return obj
