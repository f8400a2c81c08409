"""The EBMC training loop: stage I, then stage II from the best stage-I checkpoint; validation-only selection."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from typing import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from ebmc.store.errors import ConfigError
from ebmc.train.batch import Batch
from ebmc.train.config import RunConfig
from ebmc.train.data import Data
from ebmc.train.metrics import compute_metrics, selection_key
from ebmc.train.model import EBMC, TERM_NAMES
from ebmc.train.protocols.training import eval_transform, train_transform

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainState:
    """Everything needed to continue a run after its last completed epoch (all tensors/plain data,
    so ``torch.load(weights_only=True)`` reads it back).

    ``stage`` is the stage in progress (1 or 2), ``epoch`` the epochs it has completed; ``stopped``
    marks a stage ended early by patience. ``best`` holds the weights of the stage's best validation
    epoch, ``teacher`` the best stage-I weights (stage II only).
    """

    stage: int
    epoch: int
    model: dict
    optimizer: dict
    best: dict
    best_score: float
    best_epoch: int
    best_valid: dict
    stale: int
    stopped: bool
    teacher: dict | None
    history: list[dict]
    rng: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "TrainState":
        return cls(**raw)


@dataclasses.dataclass
class TrainResult:
    """A finished run: the model at the selected checkpoint (eval mode), its metrics and the history."""

    model: EBMC
    metrics: dict
    state: TrainState


def _copy(state_dict: dict) -> dict:
    return {k: v.detach().clone() for k, v in state_dict.items()}


def _rng_state(generator: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "shuffle": generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_model(cfg: RunConfig, data: Data) -> EBMC:
    """The one place an EBMC is constructed: ``cfg``'s model and loss for ``data``'s feature
    dimensions and task, on ``data.device`` (weights as initialised by the global torch RNG)."""
    return EBMC(cfg.model, data.dims, data.task, cfg.loss).to(data.device)


def build_model(cfg: RunConfig, data: Data) -> EBMC:
    """A fresh EBMC for ``data``'s modalities and task, with train-split input statistics set.

    Seeds the global torch RNG with ``cfg.train.seed`` first, so initialisation is reproducible.
    """
    torch.manual_seed(cfg.train.seed)
    model = make_model(cfg, data)
    model.set_input_stats(*data.input_stats())
    return model


def _optimizer(model: EBMC, cfg: RunConfig, stage: int) -> torch.optim.Optimizer:
    """A fresh Adam; stage II with ``freeze_encoders`` leaves the encoders out (and frozen).

    On CUDA the fused kernel updates every parameter in one launch and keeps the step counters on
    the device (no host read per step); elsewhere foreach: one batched update instead of a Python
    loop per parameter.
    """
    if stage == 2 and cfg.train.freeze_encoders:
        model.encoders.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    fast = {"fused": True} if params and params[0].device.type == "cuda" else {"foreach": True}
    return torch.optim.Adam(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, **fast)


def _autocast(cfg: RunConfig, device: torch.device):
    if device.type == "cuda" and cfg.train.bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def predict(model: EBMC, batch_iter: Iterable[Batch], stage: int = 2) -> dict[str, np.ndarray]:
    """Run ``model`` (eval mode, no gradients) over batches; labels are not shown to the model.

    Returns pred (N,) | (N, K) | (N, K, 2), y (N, ...) or None, trust (N, M) fusion weights,
    fused (N, H) fused representations, as float32/int numpy arrays in batch order.
    """
    was_training = model.training
    model.eval()
    parts: dict[str, list[Tensor]] = {"pred": [], "y": [], "trust": [], "fused": []}
    with torch.no_grad():
        for batch in batch_iter:
            out = model(dataclasses.replace(batch, y=None), stage)
            parts["pred"].append(out.pred.float())
            parts["trust"].append(out.trust.float())
            parts["fused"].append(out.fused.float())
            if batch.y is not None:
                parts["y"].append(batch.y)
    model.train(was_training)
    result = {k: torch.cat(v).cpu().numpy() if v else None for k, v in parts.items()}
    if not parts["pred"]:
        raise ValueError("predict got no batches: the split is empty")
    return result


def evaluate(model: EBMC, data: Data, split: str, transform: Callable[[Batch], Batch] | None = None,
             stage: int = 2, batch_size: int = 512) -> dict:
    """Metrics of ``model`` on ``split``; ``transform`` (e.g. a robustness protocol) edits each batch first."""
    batches = data.batches(split, batch_size)
    if transform is not None:
        batches = map(transform, batches)
    out = predict(model, batches, stage)
    return compute_metrics(data.task, out["pred"], out["y"], protocol=data.metric_protocol)


def _better(score: float, best: float, mode: str) -> bool:
    if math.isnan(score):
        return False
    if math.isnan(best):
        return True
    return score < best if mode == "min" else score > best


def _fresh_stage(stage: int, model: EBMC, optimizer: torch.optim.Optimizer, teacher: dict | None,
                 history: list[dict], rng: dict) -> TrainState:
    return TrainState(stage=stage, epoch=0, model=_copy(model.state_dict()), optimizer=optimizer.state_dict(),
                      best=_copy(model.state_dict()), best_score=float("nan"), best_epoch=0, best_valid={},
                      stale=0, stopped=False, teacher=teacher, history=history, rng=rng)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite at ``stage``/``epoch``: the run cannot go on."""

    def __init__(self, stage: int, epoch: int, loss: float):
        super().__init__(f"stage {stage} epoch {epoch}: the training loss is {loss}, the run diverged; lower "
                         "--train.lr (or set --train.grad_clip), or check the features for extreme values")
        self.stage, self.epoch = stage, epoch


def _train_epoch(model: EBMC, data: Data, cfg: RunConfig, stage: int, optimizer: torch.optim.Optimizer,
                 teacher: EBMC | None, generator: torch.Generator) -> dict[str, float]:
    """One pass over the shuffled train split; returns the sample-weighted mean loss and terms.

    The step never makes the host wait for the device: the loss terms are summed on the device and
    read once, at the end of the epoch (the one place to check them, e.g. for finiteness).
    ``robust_augment`` corrupts each batch with draws from ``generator`` too, whose state the
    resume checkpoint keeps: a resumed run sees the same corruptions as an uninterrupted one.
    """
    model.train()
    names = ("loss", *TERM_NAMES)
    total: Tensor | float = 0.0
    n = 0
    batches = data.batches("train", cfg.train.batch_size, shuffle=True, generator=generator)
    transform = train_transform(cfg.train, stage, generator)
    if transform is not None:
        batches = map(transform, batches)
    for batch in batches:
        total = total + train_step(model, batch, cfg, stage, optimizer, teacher) * batch.size
        n += batch.size
    means = (torch.as_tensor(total) / n).tolist()  # the epoch's one host read
    return dict(zip(names, means, strict=True))


def train_step(model: EBMC, batch: Batch, cfg: RunConfig, stage: int, optimizer: torch.optim.Optimizer,
               teacher: EBMC | None) -> Tensor:
    """One optimisation step (forward, backward, clip, Adam step) on ``batch``, model in train mode.

    Returns the loss and the TERM_NAMES terms, (1 + len(TERM_NAMES),) float32, detached and still
    on the device: nothing here makes the host wait for it.
    """
    with _autocast(cfg, batch.index.device):
        out = model(batch, stage, teacher=teacher)
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    if cfg.train.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
    optimizer.step()
    return torch.stack([out.loss, *(out.terms[k] for k in TERM_NAMES)]).detach().float()


def train(cfg: RunConfig, data: Data, state: TrainState | None = None,
          on_epoch: Callable[[TrainState], None] | None = None, progress: bool = True) -> TrainResult:
    """Train EBMC on ``data`` following ``cfg`` (resolved: batch size and epochs set).

    Continues from ``state`` (a resume checkpoint) when given; calls ``on_epoch(state)`` after each
    completed epoch so the caller can persist it. Stage I trains with the fused output supervised;
    stage II starts from the best stage-I weights with a fresh optimiser and a frozen teacher copy
    of them. Each stage keeps its best validation epoch; the run's selected checkpoint is the best
    stage-II epoch, and the test split is evaluated once, there.
    """
    t = cfg.train
    if None in (t.batch_size, t.stage1_epochs, t.stage2_epochs):
        raise ValueError("train() needs a resolved config: call ebmc.train.config.resolve(cfg, dataset) first")
    key, mode = selection_key(data.task) if t.select_metric is None else (
        t.select_metric, "min" if t.select_metric == "mae" else "max")
    epochs = {1: t.stage1_epochs, 2: t.stage2_epochs}
    generator = torch.Generator().manual_seed(t.seed)
    model = build_model(cfg, data)
    # an unknown --train.select_metric fails here, before any training (the model is in eval mode: no RNG draws)
    known = evaluate(model, data, "valid", stage=1, batch_size=t.eval_batch_size)
    if key not in known:
        raise ConfigError(f"--train.select_metric = {key}: not a {data.task.kind} metric; choose "
                         f"from {', '.join(sorted(_scalars(known)))}")
    if state is None:
        state = _fresh_stage(1, model, _optimizer(model, cfg, 1), None, [], _rng_state(generator))
    bar = _progress_bar(progress, epochs, state)
    try:
        for stage in (1, 2):
            if state.stage > stage:
                continue
            model.load_state_dict(state.model)
            optimizer = _optimizer(model, cfg, stage)
            optimizer.load_state_dict(state.optimizer)
            teacher = None
            if stage == 2:
                model.load_state_dict(state.teacher)
                teacher = model.make_teacher()
                model.load_state_dict(state.model)
            _set_rng_state(state.rng, generator)
            while state.epoch < epochs[stage] and not state.stopped:
                start = time.perf_counter()
                train_terms = _train_epoch(model, data, cfg, stage, optimizer, teacher, generator)
                if not math.isfinite(train_terms["loss"]):  # once per epoch: the loss is summed on the device
                    raise Diverged(stage, state.epoch + 1, train_terms["loss"])
                valid = evaluate(model, data, "valid", transform=eval_transform(t, stage, "valid"), stage=stage,
                                 batch_size=t.eval_batch_size)
                score = float(valid[key])
                state.epoch += 1
                if _better(score, state.best_score, mode) or state.epoch == 1:
                    state.best, state.best_score, state.best_epoch = _copy(model.state_dict()), score, state.epoch
                    state.best_valid, state.stale = valid, 0
                else:
                    state.stale += 1
                state.stopped = bool(t.patience and state.stale >= t.patience)
                seconds = time.perf_counter() - start
                state.history.append({"stage": stage, "epoch": state.epoch, "seconds": seconds,
                                      **{f"train_{k}": v for k, v in train_terms.items()},
                                      **{f"valid_{k}": v for k, v in _scalars(valid).items()}})
                state.model, state.optimizer = _copy(model.state_dict()), optimizer.state_dict()
                state.rng = _rng_state(generator)
                log.info("stage %d epoch %d/%d  loss %.4f  valid %s %.4f  best %.4f (epoch %d)  %.1fs%s",
                         stage, state.epoch, epochs[stage], train_terms["loss"], key, score, state.best_score,
                         state.best_epoch, seconds, "  early stop" if state.stopped else "")
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(stage=stage, loss=f"{train_terms['loss']:.3f}", **{key: f"{score:.3f}"})
                if on_epoch is not None:
                    on_epoch(state)
            if stage == 1:
                # stage II: best stage-I weights, fresh optimiser, the same weights frozen as teacher
                model.load_state_dict(state.best)
                state = _fresh_stage(2, model, _optimizer(model, cfg, 2), _copy(state.best), state.history,
                                     _rng_state(generator))
                if bar is not None:
                    bar.total = state_total(epochs, state)
                    bar.refresh()
                if on_epoch is not None:
                    on_epoch(state)
    finally:
        if bar is not None:
            bar.close()
    model.load_state_dict(state.best)
    model.eval()
    test = evaluate(model, data, "test", transform=eval_transform(t, 2, "test"), stage=2,
                    batch_size=t.eval_batch_size)
    metrics = {"valid": state.best_valid, "test": test, "selected": {"stage": 2, "epoch": state.best_epoch},
               "select_metric": key, "select_mode": mode}
    return TrainResult(model=model, metrics=metrics, state=state)


def _scalars(metrics: dict) -> dict[str, float]:
    """The scalar entries of a metrics dict (per-class lists stay out of the history table)."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, np.floating, np.integer))}


def state_total(epochs: dict[int, int], state: TrainState) -> int:
    """Epochs the run will have done when it ends: an early-stopped stage I counts as done."""
    done1 = sum(1 for row in state.history if row["stage"] == 1)
    return (done1 if state.stage == 2 else epochs[1]) + epochs[2]


def _progress_bar(progress: bool, epochs: dict[int, int], state: TrainState):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=state_total(epochs, state), initial=len(state.history), unit="epoch", leave=False,
                desc="EBMC")
