"""Counting host synchronisations: operations whose value or output shape the host must read from the device.

On an accelerator each of these stalls the host until the device has caught up (``.item()``,
``bool(t)``, ``nonzero``, boolean-mask indexing, ...), so a lean training step has none. They are
recognised by operator at the dispatcher, which works on CPU too: a CPU run counts the
synchronisations the same code would make on CUDA. Used by the tests and by bench/train_speed.py.
"""
from __future__ import annotations

import dataclasses
import traceback
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ebmc.train.model import dropout

# Operators that read device data on the host (item/bool/int/float all become _local_scalar_dense).
SYNC_OPS = frozenset({"aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::bincount",
                      "aten::_unique2", "aten::unique_dim", "aten::unique_consecutive"})
# Operators that synchronise only with some arguments: boolean-mask indices, repeat counts without output_size.
_INDEX_OPS = frozenset({"aten::index", "aten::index_put", "aten::index_put_", "aten::_index_put_impl_"})
# Host reads that are no device synchronisation on any device: Adam's step counters live on the host
# unless fused/capturable (torch keeps them there on CUDA too), and CPU dropout seeds numpy from torch's
# CPU generator (ebmc.train.model.dropout; other devices use F.dropout).
HOST_ONLY = (str(Path(torch.optim.__file__).parent), dropout.__file__)


@dataclasses.dataclass(frozen=True)
class Sync:
    """One synchronising call: the operator and the first caller outside torch (file:line)."""

    op: str
    where: str


def _caller() -> str:
    """The innermost stack frame outside torch itself (``torch/optim`` counts as a caller)."""
    torch_dir = str(Path(torch.__file__).parent)
    for frame in reversed(traceback.extract_stack()[:-3]):
        name = frame.filename
        if not name.startswith(torch_dir) or name.startswith(HOST_ONLY[0]):
            return f"{name}:{frame.lineno} ({frame.name})"
    return "torch internals"


def _is_sync(op: str, args: tuple, kwargs: dict) -> bool:
    if op in SYNC_OPS:
        return True
    if op in _INDEX_OPS:
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        return any(i is not None and i.dtype in (torch.bool, torch.uint8) for i in indices)
    if op == "aten::repeat_interleave":
        return isinstance(args[0], torch.Tensor) and args[0].dim() > 0 and kwargs.get("output_size") is None \
            and len(args) < 4
    return False


class SyncCounter(TorchDispatchMode):
    """Context manager recording every host synchronisation of the code it runs (forward, backward,
    optimiser step): ``syncs`` lists them; ``device_syncs()`` leaves out the HOST_ONLY reads."""

    def __init__(self):
        super().__init__()
        self.syncs: list[Sync] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        op = func._schema.name
        if _is_sync(op, args, kwargs):
            self.syncs.append(Sync(op, _caller()))
        return func(*args, **kwargs)

    def device_syncs(self) -> list[Sync]:
        """The synchronisations that would stall the host on an accelerator."""
        return [s for s in self.syncs if not s.where.startswith(HOST_ONLY)]
