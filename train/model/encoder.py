"""Per-modality encoder of EBMC: normalise, reduce time, pre-LN Transformer, masked mean pooling -> z_m (B, H).

The encoder works on *packed* steps: only valid steps exist, sample after sample, in time order
((N, H) for N valid steps in the batch). Padding therefore costs no projection, feed-forward or
normalisation work; it is laid out as a (B, S) grid only inside attention, where its keys are masked.
Padded steps never influenced a valid one (keys are masked, everything else is per step), so this
is the same function as running the padded batch through ``nn.TransformerEncoder``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig
from .dropout import dropout


def pack_steps(frames: Tensor, mask: Tensor, max_steps: int) -> tuple[Tensor, Tensor]:
    """Mean-pool runs of valid frames so each sample keeps at most ``max_steps`` steps, packed.

    frames: (n, d) the valid frames ``x[mask]`` (sample after sample, in time order); mask: (B, T) bool
    (True = valid) -> steps (N, d) packed the same way, lengths (B,) steps per sample (0 when empty).
    A sample with L valid frames uses stride ceil(L / max_steps) over its valid frames in order, so the
    result depends on the valid frames only, never on padding; samples with L <= max_steps keep every frame.
    """
    n_valid = mask.sum(1)
    stride = torch.div(n_valid + max_steps - 1, max_steps, rounding_mode="floor").clamp(min=1)
    lengths = torch.div(n_valid + stride - 1, stride, rounding_mode="floor")
    if bool((stride == 1).all()):
        return frames, lengths
    sample = torch.repeat_interleave(torch.arange(len(n_valid), device=mask.device), n_valid)
    rank = torch.arange(frames.shape[0], device=mask.device) - (n_valid.cumsum(0) - n_valid)[sample]
    segment = (lengths.cumsum(0) - lengths)[sample] + torch.div(rank, stride[sample], rounding_mode="floor")
    n_steps = int(lengths.sum())
    total = frames.new_zeros(n_steps, frames.shape[1]).index_add_(0, segment, frames)
    count = torch.bincount(segment, minlength=n_steps).to(frames.dtype)
    return total / count.unsqueeze(1), lengths


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
    initialisation and state-dict keys); ``forward`` runs them on packed steps (see module docstring).
    """

    def __init__(self, in_dim: int, cfg: ModelConfig):
        super().__init__()
        H = cfg.hidden_dim
        self.max_steps = cfg.max_steps
        self.heads = cfg.encoder_heads
        self.dropout = cfg.dropout
        # Train-split statistics, set by EBMC.set_input_stats; identity until then.
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.proj = nn.Linear(in_dim, H)
        self.pos = nn.Parameter(torch.randn(cfg.max_steps, H) * 0.02)
        layer = nn.TransformerEncoderLayer(H, cfg.encoder_heads, cfg.encoder_ff_mult * H, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, cfg.encoder_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(H)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x: (B, T, d), mask: (B, T) bool (True = valid) -> z: (B, H), zeros where no step is valid."""
        frames = x[mask]
        # Non-finite inputs (COVAREP has -inf) become the train mean, i.e. 0 after normalisation.
        frames = torch.where(torch.isfinite(frames), (frames - self.mean) / self.std, torch.zeros_like(frames))
        steps, lengths = pack_steps(frames, mask, self.max_steps)
        B, S = mask.shape[0], max(int(lengths.max()) if len(lengths) else 0, 1)
        sample = torch.repeat_interleave(torch.arange(B, device=x.device), lengths)
        position = torch.arange(steps.shape[0], device=x.device) - (lengths.cumsum(0) - lengths)[sample]
        grid = sample * S + position                                   # row of each step in the (B*S) grid
        attend = torch.arange(S, device=x.device) < lengths.unsqueeze(1)
        # All-masked attention rows give NaN: let empty samples attend to their (zero) first step;
        # they have no steps, so nothing reads the result.
        attend[:, 0] |= lengths == 0
        h = self.proj(steps) + self.pos.index_select(0, position)
        for layer in self.layers.layers:
            h = self._layer(layer, h, grid, attend)
        h = self.norm(h)
        total = h.new_zeros(B, h.shape[1]).index_add_(0, sample, h)
        return total / lengths.clamp(min=1).unsqueeze(1).to(h.dtype)

    def _layer(self, layer: nn.TransformerEncoderLayer, h: Tensor, grid: Tensor, attend: Tensor) -> Tensor:
        """One pre-LN layer (as ``nn.TransformerEncoderLayer(norm_first=True)``) on packed steps h (N, H)."""
        attn, p = layer.self_attn, self.dropout
        (B, S), H = attend.shape, h.shape[1]
        qkv = F.linear(layer.norm1(h), attn.in_proj_weight, attn.in_proj_bias)
        qkv = qkv.new_zeros(B * S, 3 * H).index_copy(0, grid, qkv)
        q, k, v = qkv.view(B, S, 3, self.heads, H // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        ctx = attention(q, k, v, attend, p, self.training).transpose(1, 2).reshape(B * S, H)
        h = h + dropout(attn.out_proj(ctx.index_select(0, grid)), p, self.training)
        ff = layer.linear2(dropout(F.gelu(layer.linear1(layer.norm2(h))), p, self.training))
        return h + dropout(ff, p, self.training)
