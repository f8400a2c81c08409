"""Per-modality encoder of EBMC: normalise, reduce time, pre-LN Transformer, masked mean pooling -> z_m (B, H)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import ModelConfig


def reduce_time(x: Tensor, mask: Tensor, max_steps: int) -> tuple[Tensor, Tensor]:
    """Mean-pool runs of valid frames so each sample keeps at most ``max_steps`` steps.

    x: (B, T, d), mask: (B, T) bool (True = valid) -> (B, S, d), (B, S) bool with S <= max_steps.
    A sample with L valid frames uses stride ceil(L / max_steps) over its valid frames in order, so the
    result depends on the valid frames only, never on how much padding the batch carries; samples
    with L <= max_steps pass unchanged (stride 1).
    """
    B, T, d = x.shape
    lengths = mask.sum(1)
    stride = torch.div(lengths + max_steps - 1, max_steps, rounding_mode="floor").clamp(min=1)
    steps = torch.div(lengths + stride - 1, stride, rounding_mode="floor")
    S = max(int(steps.max()) if B else 0, 1)
    rank = mask.long().cumsum(1) - 1                                  # position among valid frames
    segment = torch.where(mask, torch.div(rank, stride[:, None], rounding_mode="floor"),
                          torch.full_like(rank, S))                   # padding goes to a dropped bucket
    total = x.new_zeros(B, S + 1, d).scatter_add_(1, segment.unsqueeze(-1).expand(B, T, d), x)
    count = x.new_zeros(B, S + 1).scatter_add_(1, segment, mask.to(x.dtype))
    count = count[:, :S]
    return total[:, :S] / count.clamp(min=1.0).unsqueeze(-1), count > 0


class ModalityEncoder(nn.Module):
    """Encodes one modality's sequence into z_m (B, H); an absent sample gives exactly zeros."""

    def __init__(self, in_dim: int, cfg: ModelConfig):
        super().__init__()
        H = cfg.hidden_dim
        self.max_steps = cfg.max_steps
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
        # Non-finite inputs (COVAREP has -inf) become the train mean, i.e. 0 after normalisation.
        # Masked steps need no zeroing: reduce_time drops them before anything else sees them.
        normed = (x - self.mean) / self.std
        normed = torch.where(torch.isfinite(x), normed, torch.zeros_like(normed))
        steps, step_mask = reduce_time(normed, mask, self.max_steps)
        h = self.proj(steps) + self.pos[: steps.shape[1]]
        has_any = step_mask.any(1)
        # All-masked attention rows give NaN: let empty samples attend to their (zero) first step;
        # their output is discarded below.
        attend = step_mask.clone()
        attend[:, 0] |= ~has_any
        h = self.norm(self.layers(h, src_key_padding_mask=~attend))
        w = step_mask.to(h.dtype).unsqueeze(-1)
        return (h * w).sum(1) / w.sum(1).clamp(min=1.0)
