"""Each named ablation switches off what its name says, checked by gradients; docs/training.md lists their settings."""
import dataclasses
from pathlib import Path

import pytest
import torch
from ebmc.train.ablations import ABLATIONS, ablation_table, apply_ablation
from ebmc.train.config import RunConfig
from ebmc.train.model import EBMC
from test_model import CFG, DIMS, REG, make_batch

STAGE1 = {"task", "inv", "dis", "uni", "cce"}
# Loss terms that must reach the parameters, per ablation and stage (the rest must not).
LIVE = {name: {1: set(STAGE1), 2: STAGE1 | {"emc", "imtd"}} for name in ABLATIONS}
for stage in (1, 2):
    LIVE["no_msd"][stage] -= {"inv", "dis"}
    LIVE["no_cce"][stage] -= {"cce"}
LIVE["no_emc"][2].discard("emc")
LIVE["no_imtd"][2].discard("imtd")
# Which of the energy's three inputs E(m) depends on: z directly (norm), the head's mean (l_m), its
# log-variance (u_m; regression l_m is the L1 of the mean only).
ENERGY = {name: {"norm", "task", "uncertainty"} for name in ABLATIONS}
ENERGY["emc_no_norm"] -= {"norm"}
ENERGY["emc_no_task"] -= {"task"}
ENERGY["emc_no_uncertainty"] -= {"uncertainty"}


def build(name: str) -> tuple[EBMC, RunConfig]:
    cfg = apply_ablation(RunConfig(model=CFG), name)
    torch.manual_seed(0)
    return EBMC(cfg.model, DIMS, REG, cfg.loss).train(), cfg


def live_terms(model: EBMC, stage: int, teacher: EBMC | None) -> set[str]:
    """Terms with a non-zero gradient path into the parameters *and* a non-zero weight in the loss."""
    torch.manual_seed(1)
    out = model(make_batch(), stage, teacher)
    params = [p for p in model.parameters() if p.requires_grad]
    live = set()
    for name in ("task", "inv", "dis", "uni", "cce", "emc", "imtd"):
        term = out.terms[name]
        if not term.requires_grad:
            continue
        (weight,) = torch.autograd.grad(out.loss, term, retain_graph=True)
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        if float(weight) != 0 and any(g is not None and bool(g.abs().sum() > 0) for g in grads):
            live.add(name)
    return live


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_each_ablation_trains_exactly_its_losses(name):
    model, _ = build(name)
    assert live_terms(model, 1, None) == LIVE[name][1]
    assert live_terms(model, 2, model.make_teacher()) == LIVE[name][2]


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_unimodal_heads_learn_in_stage_one(name):
    """T_m feed stage II in every ablation (IMTD teacher, trust fusion or EMC's l_m and u_m): stage I
    must train them, also without MSD."""
    model, _ = build(name)
    torch.manual_seed(1)
    model(make_batch(), 1).loss.backward()
    for m in DIMS:
        grads = [p.grad for p in model.msd.predictor[m].parameters()]
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0, (name, m)


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_trust_fusion_follows_the_ablation(name):
    """Trust fusion is live when the fused prediction responds to the unimodal heads' uncertainty:
    raising one head's log-variance changes the stage-II prediction (and never stage I's)."""
    model, _ = build(name)
    model.eval()
    batch = dataclasses.replace(make_batch(), y=None)  # predictions only
    before = {stage: model(batch, stage).pred for stage in (1, 2)}
    with torch.no_grad():
        model.msd.predictor["audio"][-1].bias[1] += 3.0
    after = {stage: model(batch, stage).pred for stage in (1, 2)}
    assert torch.equal(before[1], after[1])
    assert (not torch.equal(before[2], after[2])) == (name != "no_imtd")


@pytest.mark.parametrize("name", [n for n in ABLATIONS if n != "no_emc"])
def test_energy_terms_follow_the_ablation(name):
    """d L_gap / d input is non-zero exactly for the energy terms the ablation keeps."""
    model, _ = build(name)
    batch = make_batch()
    z, present = model.encode(batch)
    z = z.detach().requires_grad_()
    raw = model.unimodal_heads(z)[2].detach().requires_grad_()
    _, _, gap, _ = model._emc_terms(z, raw, present, batch.y)
    d_z, d_raw = torch.autograd.grad(gap, (z, raw))
    live = {part for part, grad in (("norm", d_z), ("task", d_raw[..., 0]), ("uncertainty", d_raw[..., 1]))
            if bool(grad.abs().sum() > 0)}
    assert live == ENERGY[name]


def test_training_docs_list_every_ablation_as_generated():
    """docs/training.md holds ablations.ablation_table(); regenerate with
    ``python -c 'from ebmc.train.ablations import ablation_table; print(ablation_table())'``."""
    doc = (Path(__file__).parents[2] / "docs" / "training.md").read_text().splitlines()
    missing = [row for row in ablation_table().splitlines() if row not in doc]
    assert not missing, "docs/training.md is out of date; regenerate its ablation table:\n" + "\n".join(missing)
