"""Per-modality encoder of EBMC: normalise, reduce time, pre-LN Transformer, masked mean pooling -> z_m (B, H).

The valid frames are pooled into a (B, S) grid of steps, S = min(T, max_steps), by index
arithmetic on the mask: the grid's shape follows from the input's shape, never from its values.
On an accelerator the Transformer runs on the whole grid, so a forward pass needs no host
synchronisation (no ``nonzero``, no boolean-mask indexing, no ``.item()``). On CPU (see ``packs``)
it runs on the *packed* valid steps only, sample after sample ((N, H) for N valid steps), laid
out as the grid only inside attention; padding then costs no projection, feed-forward or
normalisation work. Either way padded steps never influence a valid one (keys are masked,
everything else is per step), so both are the same function as running the padded batch through
``nn.TransformerEncoder``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dropout import dropout


def pool_steps(frames: Tensor, mask: Tensor, max_steps: int) -> tuple[Tensor, Tensor]:
    """Mean-pool runs of valid frames so each sample keeps at most ``max_steps`` steps, left-aligned.

    frames: (B, T, d), zero where invalid; mask: (B, T) bool (True = valid) -> steps (B, S, d) with
    S = min(T, max_steps) (at least 1), zero after each sample's last step, and lengths (B,) steps per
    sample (0 when empty). A sample with L valid frames uses stride ceil(L / max_steps) over its valid
    frames in order, so the result depends on the valid frames only, never on padding or on holes in
    the mask; samples with L <= max_steps keep every valid frame (packed to the left).
    """
    B, T, d = frames.shape
    S = max(min(T, max_steps), 1)
    n_valid = mask.sum(1)
    stride = torch.div(n_valid + max_steps - 1, max_steps, rounding_mode="floor").clamp(min=1)
    lengths = torch.div(n_valid + stride - 1, stride, rounding_mode="floor")
    rank = (mask.cumsum(1) - 1).clamp(min=0)                             # (B, T) rank among valid frames
    # invalid frames land in some slot too, but with weight 0 and zero features: they add nothing
    segment = torch.div(rank, stride.unsqueeze(1), rounding_mode="floor").clamp(max=S - 1)
    slot = (torch.arange(B, device=mask.device).unsqueeze(1) * S + segment).reshape(-1)   # (B * T,)
    count = frames.new_zeros(B * S).index_add_(0, slot, mask.to(frames.dtype).reshape(-1))
    # one flat index per element: CPU index_add_ over rows runs a small op per row, ~10x slower;
    # int32 halves the index's memory (it is as large as the frames) wherever it can count that far
    index = torch.int32 if B * S * d < 2**31 else torch.int64
    element = (slot.to(index).unsqueeze(1) * d + torch.arange(d, device=mask.device, dtype=index)).reshape(-1)
    total = frames.new_zeros(B * S * d).index_add_(0, element, frames.reshape(-1)).view(B * S, d)
    return (total / count.clamp(min=1).unsqueeze(1)).view(B, S, d), lengths


def attention(q: Tensor, k: Tensor, v: Tensor, attend: Tensor, p: float, training: bool) -> Tensor:
    """Scaled dot-product attention over keys ``attend`` (B, S) bool; q, k, v (B, heads, S, dh) -> same.

    With dropout on CPU, torch's fused kernel is unavailable and its fallback draws the dropout mask
    with the slow ``bernoulli_``; the same math is spelt out here with the cheaper mask.
    """
    if training and p > 0 and q.device.type == "cpu":
        scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        scores = scores.masked_fill(~attend[:, None, None, :], float("-inf"))
        return dropout(scores.softmax(-1), p, True) @ v
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attend[:, None, None, :],
                                          dropout_p=p if training else 0.0)


class ModalityEncoder(nn.Module):
    """Encodes one modality's sequence into z_m (B, H); an absent sample gives exactly zeros.

    The Transformer's parameters live in standard ``nn.TransformerEncoderLayer`` modules (their
    initialisation and state-dict keys); ``forward`` runs them on the pooled step grid (see module docstring).
    """

    def __init__(self, in_dim: int, hidden_dim: int, max_steps: int, heads: int, layers: int, ff_mult: int,
                 dropout: float):
        super().__init__()
        H = hidden_dim
        self.max_steps = max_steps
        self.heads = heads
        self.dropout = dropout
        # Train-split statistics, set by EBMC.set_input_stats; identity until then.
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.proj = nn.Linear(in_dim, H)
        self.pos = nn.Parameter(torch.randn(max_steps, H) * 0.02)
        layer = nn.TransformerEncoderLayer(H, heads, ff_mult * H, dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(H)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x: (B, T, d), mask: (B, T) bool (True = valid) -> z: (B, H), zeros where no step is valid."""
        # Non-finite inputs (COVAREP has -inf) become the train mean, i.e. 0 after normalisation.
        keep = mask.unsqueeze(-1) & torch.isfinite(x)
        frames = torch.where(keep, (x - self.mean) / self.std, torch.zeros_like(x))
        steps, lengths = pool_steps(frames, mask, self.max_steps)
        (B, S, d), H = steps.shape, self.pos.shape[1]
        valid = torch.arange(S, device=x.device) < lengths.unsqueeze(1)   # (B, S)
        # All-masked attention rows give NaN: let empty samples attend to their (zero) first step;
        # they have no valid steps, so nothing reads the result.
        first = torch.arange(S, device=x.device) == 0
        attend = valid | (first & (lengths == 0).unsqueeze(1))
        rows = valid.reshape(-1).nonzero().squeeze(1) if packs(x.device) else None
        h = self.proj(_rows(steps.reshape(B * S, d), rows)) + _rows(self.pos[:S].repeat(B, 1), rows)
        for layer in self.layers.layers:
            h = self._layer(layer, h, attend, rows)
        h = _grid(self.norm(h), rows, B * S).view(B, S, H)
        w = valid.to(h.dtype).unsqueeze(-1)
        return (h * w).sum(1) / lengths.clamp(min=1).unsqueeze(1).to(h.dtype)

    def _layer(self, layer: nn.TransformerEncoderLayer, h: Tensor, attend: Tensor, rows: Tensor | None) -> Tensor:
        """One pre-LN layer (as ``nn.TransformerEncoderLayer(norm_first=True)``) on steps h (N, H),
        the ``rows`` of the (B * S) step grid (all of it when ``rows`` is None)."""
        attn, p = layer.self_attn, self.dropout
        (B, S), H = attend.shape, h.shape[1]
        qkv = _grid(F.linear(layer.norm1(h), attn.in_proj_weight, attn.in_proj_bias), rows, B * S)
        q, k, v = qkv.view(B, S, 3, self.heads, H // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        ctx = attention(q, k, v, attend, p, self.training).transpose(1, 2).reshape(B * S, H)
        h = h + dropout(attn.out_proj(_rows(ctx, rows)), p, self.training)
        ff = layer.linear2(dropout(F.gelu(layer.linear1(layer.norm2(h))), p, self.training))
        return h + dropout(ff, p, self.training)


def packs(device: torch.device) -> bool:
    """Whether the encoder packs valid steps on ``device``: yes on CPU, where reading the mask costs
    no device wait and packing skips the work on padded steps; elsewhere the static (B, S) grid,
    so a step never makes the host wait for the accelerator."""
    return device.type == "cpu"


def _rows(grid: Tensor, rows: Tensor | None) -> Tensor:
    """The packed ``rows`` of a (B * S, ...) grid tensor, or the grid itself when not packing."""
    return grid if rows is None else grid.index_select(0, rows)


def _grid(packed: Tensor, rows: Tensor | None, size: int) -> Tensor:
    """Inverse of ``_rows``: packed steps (N, ...) back into a zero (size, ...) grid."""
    return packed if rows is None else packed.new_zeros(size, *packed.shape[1:]).index_copy(0, rows, packed)
