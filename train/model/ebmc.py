"""The EBMC model (paper Sec. 3; docs/decisions.md, Model): encoders, MSD, CCE, trust fusion, EMC and IMTD losses."""
from __future__ import annotations

import copy
import dataclasses

import torch
from torch import Tensor, nn

from ebmc.store.errors import format_problems
from ebmc.store.schema import MODALITIES
from ..batch import MIN_STD, Batch, TaskSpec
from ..losses import (disentangle, info_nce, masked_mean, multi_present, spread, task_loss,
                      unimodal_loss, unimodal_prediction)
from .cce import CCE
from .config import LossConfig, ModelConfig
from .emc import energy_gap, gradient_penalty, modality_energies, sample_energy
from .encoder import ModalityEncoder
from .imtd import imtd_loss, trust_weights
from .msd import MSD

# Every unweighted term ModelOutput.terms carries (0 when switched off or not in this stage).
TERM_NAMES = ("task", "inv", "dis", "uni", "msd", "cce_rec", "cce_task", "cce", "gap", "grad_pen", "emc", "imtd")


@dataclasses.dataclass
class ModelOutput:
    """What one forward pass returns. M = model.modalities (the order of ``dims``).

    pred: (B,) regression | (B, K) class logits | (B, K, 2) per-label logits.
    fused: (B, H) hidden layer of the fusion head (the fused representation, for t-SNE).
    trust: (B, M) fusion weights w_m (1 per present modality in stage I; |M_i| alpha in stage II
        with trust_fusion); 0 for absent modalities.
    alpha: (B, M) trust alpha_m^i from the model's own unimodal uncertainty (sums to 1 per sample).
    spread: (B, M) predictive spread sigma of each unimodal head (std or entropy).
    present: (B, M) bool, the modalities the model treated as present.
    unimodal: {m: prediction of T_m in pred's format}.
    energy: {m: E(m)} batch energies (stage II with use_emc and labels; 0 for a modality without samples).
    terms: {name: unweighted scalar} for TERM_NAMES, when the batch has labels.
    loss: the weighted objective of the stage, when the batch has labels.
    """

    pred: Tensor
    fused: Tensor
    trust: Tensor
    alpha: Tensor
    spread: Tensor
    present: Tensor
    unimodal: dict[str, Tensor]
    energy: dict[str, Tensor] = dataclasses.field(default_factory=dict)
    terms: dict[str, Tensor] = dataclasses.field(default_factory=dict)
    loss: Tensor | None = None


class EBMC(nn.Module):
    """EBMC for any non-empty subset of text/audio/vision; ``dims`` = {modality: feature dim d_m}."""

    def __init__(self, cfg: ModelConfig, dims: dict[str, int], task: TaskSpec, loss: LossConfig = LossConfig()):
        super().__init__()
        problems = [f"modality {m!r} is unknown: use {', '.join(MODALITIES)}" for m in dims if m not in MODALITIES]
        problems += [f"modality {m!r} has feature dim {d}: must be >= 1" for m, d in dims.items() if d < 1]
        if not dims:
            problems.append("dims is empty: the model needs at least one modality")
        if task.kind not in ("regression", "classification", "multilabel"):
            problems.append(f"task kind {task.kind!r} is unknown")
        elif task.kind != "regression" and task.n_outputs < (2 if task.kind == "classification" else 1):
            problems.append(f"{task.kind} task has {task.n_outputs} outputs: set n_classes / label_names")
        if problems:
            raise ValueError(format_problems("cannot build EBMC:", problems))
        self.cfg, self.loss_cfg, self.task = cfg, loss, task
        self.modalities = tuple(dims)
        self.dims = dict(dims)
        H, K = cfg.hidden_dim, task.n_outputs
        uni_out = {"regression": 2, "classification": K, "multilabel": 2 * K}[task.kind]
        fused_out = {"regression": 1, "classification": K, "multilabel": 2 * K}[task.kind]
        self.encoders = nn.ModuleDict({m: ModalityEncoder(d, H, cfg.max_steps, cfg.encoder_heads, cfg.encoder_layers,
                                                          cfg.encoder_ff_mult, cfg.dropout) for m, d in dims.items()})
        self.msd = MSD(self.modalities, H, uni_out, cfg.dropout)
        self.cce = CCE(self.modalities, H, cfg.dropout, cfg.cce_noise_std) if cfg.use_cce else None
        self.fusion_hidden = nn.Sequential(nn.Linear(len(dims) * H, H), nn.GELU(), nn.Dropout(cfg.dropout))
        self.fusion_out = nn.Linear(H, fused_out)

    # ----------------------------------------------------------------------------- building blocks
    def set_input_stats(self, mean: dict[str, Tensor], std: dict[str, Tensor]) -> None:
        """Store train-split per-feature statistics {m: (d_m,)}; std below 1e-6 counts as 1."""
        problems = []
        for m in self.modalities:
            for name, stats in (("mean", mean), ("std", std)):
                if m not in stats:
                    problems.append(f"{name}[{m!r}] is missing")
                elif tuple(torch.as_tensor(stats[m]).shape) != (self.dims[m],):
                    problems.append(f"{name}[{m!r}] has shape {tuple(torch.as_tensor(stats[m]).shape)}, "
                                    f"expected ({self.dims[m]},)")
                elif not torch.isfinite(torch.as_tensor(stats[m])).all():
                    problems.append(f"{name}[{m!r}] has non-finite values: compute it on finite frames")
        if problems:
            raise ValueError(format_problems("set_input_stats:", problems))
        for m in self.modalities:
            enc = self.encoders[m]
            s = torch.as_tensor(std[m], dtype=enc.std.dtype, device=enc.std.device)
            enc.mean.copy_(torch.as_tensor(mean[m], dtype=enc.mean.dtype))
            enc.std.copy_(torch.where(s < MIN_STD, torch.ones_like(s), s))

    def encode(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """z (B, M, H), zeros for absent modalities, and present (B, M) bool.

        A modality counts as present for a sample when batch.present says so and its mask has a valid
        step; a masked-out modality cannot influence any output.
        """
        problems = []
        for m in self.modalities:
            if m not in batch.x:
                problems.append(f"modality {m!r} is missing from the batch (it has {', '.join(batch.x) or 'none'})")
            elif batch.x[m].shape[-1] != self.dims[m]:
                problems.append(f"modality {m!r} has feature dim {batch.x[m].shape[-1]}, the model was built "
                                f"for {self.dims[m]}: rebuild the model for this store")
        if problems:
            raise ValueError(format_problems("batch does not fit the model:", problems))
        zs, present = [], []
        for m in self.modalities:
            here = batch.present[m].bool() & batch.mask[m].any(1)
            zs.append(self.encoders[m](batch.x[m], batch.mask[m].bool() & here.unsqueeze(1)))
            present.append(here)
        return torch.stack(zs, 1), torch.stack(present, 1)

    def unimodal_heads(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """z (B, M, H) -> z^c, z^s (B, M, H) and raw unimodal outputs (B, M, 2 | K | (K, 2))."""
        zc, zs, raw = self.msd(z)
        if self.task.kind == "multilabel":
            raw = raw.reshape(*raw.shape[:2], self.task.n_outputs, 2)
        return zc, zs, raw

    def fuse(self, z: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
        """Fusion head f on concat_m(w_m z_m): z (B, M, H), weight (B, M) -> pred, fused (B, H)."""
        fused = self.fusion_hidden((z * weight.unsqueeze(-1)).flatten(1))
        out = self.fusion_out(fused)
        if self.task.kind == "regression":
            return out.squeeze(-1), fused
        if self.task.kind == "multilabel":
            return out.reshape(out.shape[0], self.task.n_outputs, 2), fused
        return out, fused

    def make_teacher(self) -> "EBMC":
        """A frozen copy (eval mode, no gradients) to pass as ``teacher`` in stage II."""
        teacher = copy.deepcopy(self).eval()
        teacher.requires_grad_(False)
        return teacher

    # ----------------------------------------------------------------------------- forward
    def forward(self, batch: Batch, stage: int, teacher: "EBMC | None" = None) -> ModelOutput:
        """Predict; with labels (batch.y) also every loss term and the stage's weighted loss."""
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage!r}")
        cfg, kind = self.cfg, self.task.kind
        need_energy = stage == 2 and cfg.use_emc and batch.y is not None
        grad_on = torch.is_grad_enabled()
        z, present = self.encode(batch)
        if need_energy and grad_on and not z.requires_grad:
            z = z.detach().requires_grad_()  # frozen encoders: the penalty still needs dE/dz
        zc, zs, raw = self.unimodal_heads(z)
        sigma = spread(kind, raw)
        alpha = trust_weights(sigma.detach(), present)
        if stage == 2 and cfg.trust_fusion:
            weight = alpha * present.sum(1, keepdim=True).to(alpha.dtype)
        else:
            weight = present.to(z.dtype)
        z_tilde = self.cce(zc, zs, present) if self.cce is not None else None
        pred, fused = self.fuse(z_tilde if z_tilde is not None and cfg.cce_in_fusion else z, weight)
        out = ModelOutput(pred=pred, fused=fused, trust=weight, alpha=alpha, spread=sigma, present=present,
                          unimodal={m: unimodal_prediction(kind, raw[:, j]) for j, m in enumerate(self.modalities)})
        if batch.y is None:
            return out

        y = batch.y
        zero = pred.new_zeros(())
        t = {name: zero for name in TERM_NAMES}
        t["task"] = task_loss(kind, pred, y).mean()
        # L_uni trains the unimodal heads T_m in every configuration: their confidences are the IMTD
        # teacher's and the trust-fusion weights in stage II, so w/o MSD removes the disentanglement only
        t["uni"] = masked_mean(unimodal_loss(kind, raw, y), present)
        if cfg.use_msd:
            t["inv"] = info_nce(zc, present, cfg.tau)
            t["dis"] = disentangle(zs, present)
        t["msd"] = t["inv"] + self.loss_cfg.lambda1 * t["dis"] + self.loss_cfg.lambda2 * t["uni"]
        if z_tilde is not None:
            t["cce_rec"], t["cce_task"] = self._cce_terms(z, z_tilde, weight, present, y)
            t["cce"] = t["cce_rec"] + self.loss_cfg.cce_task_weight * t["cce_task"]
        if need_energy:
            if grad_on:
                energies, has, t["gap"], t["grad_pen"] = self._emc_terms(z, raw, present, y)
            else:  # validation under no_grad: the penalty still needs a graph from z to E
                with torch.enable_grad():
                    leaf = z.detach().requires_grad_()
                    terms = self._emc_terms(leaf, self.unimodal_heads(leaf)[2], present, y)
                energies, has, t["gap"], t["grad_pen"] = (v.detach() for v in terms)
            t["emc"] = t["gap"] + cfg.emc_delta * t["grad_pen"]
            # every modality, read or not: selecting by ``has`` would make the host wait for the device
            out.energy = {m: energies[j] for j, m in enumerate(self.modalities)}
        if stage == 2 and cfg.use_imtd:
            t["imtd"] = self._imtd_term(batch, teacher, pred, present)
        w = self.loss_cfg
        loss = t["task"] + w.zeta * t["msd"] + w.beta * t["cce"]
        if stage == 2:
            loss = loss + w.gamma * t["emc"] + w.eta * t["imtd"]
        out.terms, out.loss = t, loss
        return out

    # ----------------------------------------------------------------------------- loss terms
    def _cce_terms(self, z: Tensor, z_tilde: Tensor, weight: Tensor, present: Tensor, y: Tensor
                   ) -> tuple[Tensor, Tensor]:
        """L_CCE parts (Eq. 7) over present modalities of samples with >= 2 present:
        ||z~_m - stopgrad(z_m)||^2 and the task loss of f with z~_m in slot m and z elsewhere."""
        keep = present & multi_present(present).unsqueeze(1)
        rec = masked_mean((z_tilde - z.detach()).pow(2).sum(-1), keep)
        losses = []
        for j in range(len(self.modalities)):
            swapped = torch.cat([z[:, :j], z_tilde[:, j:j + 1], z[:, j + 1:]], 1)
            losses.append(task_loss(self.task.kind, self.fuse(swapped, weight)[0], y))
        return rec, masked_mean(torch.stack(losses, 1), keep)

    def _emc_terms(self, z: Tensor, raw: Tensor, present: Tensor, y: Tensor
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Energies E(m) (M,), which have samples (M,), L_gap and the gradient penalty."""
        cfg = self.cfg
        energy = sample_energy(self.task.kind, z, raw, y, cfg.emc_a, cfg.emc_b, cfg.emc_c)
        energies, has = modality_energies(energy, present)
        return energies, has, energy_gap(energies, has), gradient_penalty(energy, z, present)

    def _imtd_term(self, batch: Batch, teacher: "EBMC | None", pred: Tensor, present: Tensor) -> Tensor:
        """L_IMTD against the frozen teacher's unimodal heads on the same (possibly degraded) batch."""
        if teacher is None:
            raise ValueError("stage II with model.use_imtd needs the frozen stage-I teacher: pass "
                             "teacher=best_stage1_model.make_teacher() (or set --model.use_imtd false)")
        if teacher.training or teacher.modalities != self.modalities:
            raise ValueError(f"the IMTD teacher must be in eval mode and use the modalities {self.modalities} "
                             f"(it is {'training' if teacher.training else 'eval'}, {teacher.modalities}): "
                             "build it with make_teacher()")
        with torch.no_grad():
            t_z, _ = teacher.encode(batch)
            t_raw = teacher.unimodal_heads(t_z)[2]
            t_alpha = trust_weights(spread(self.task.kind, t_raw), present)
        return imtd_loss(self.task.kind, pred, t_raw, t_alpha, self.cfg.imtd_tau)
