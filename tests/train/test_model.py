"""The EBMC model: shapes for every task, masking and padding invariance, switches, both stages."""
import dataclasses

import pytest
import torch

from ebmc.train.batch import Batch, TaskSpec
from ebmc.train.model import EBMC, TERM_NAMES, LossConfig, ModelConfig
from ebmc.train.model.config import model_config

DIMS = {"text": 6, "audio": 3, "vision": 4}
CFG = ModelConfig(hidden_dim=16, max_steps=4, encoder_layers=1, encoder_heads=2, encoder_ff_mult=2)
REG = TaskSpec("regression")
CLS = TaskSpec("classification", 3, ("neg", "neu", "pos"))
MUL = TaskSpec("multilabel", label_names=("happy", "sad", "angry", "neutral"))


def make_batch(task=REG, dims=DIMS, B=6, T=9, seed=0, absent=None):
    """Ragged batch; ``absent`` = {modality: list of rows without it}. Padding holds garbage."""
    g = torch.Generator().manual_seed(seed)
    x, mask, present = {}, {}, {}
    for m, d in dims.items():
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        mask[m] = torch.arange(T)[None] < lengths[:, None]
        present[m] = torch.ones(B, dtype=torch.bool)
        for row in (absent or {}).get(m, []):
            present[m][row] = False
            mask[m][row] = False
        x[m] = torch.where(mask[m][..., None], torch.randn(B, T, d, generator=g), torch.full((B, T, d), 7.0))
    if task.kind == "regression":
        y = torch.randn(B, generator=g) * 2
    elif task.kind == "classification":
        y = torch.randint(0, task.n_classes, (B,), generator=g)
    else:
        y = torch.randint(0, 2, (B, task.n_outputs), generator=g)
    return Batch(x, mask, present, y, torch.arange(B))


def run(model, batch, stage, teacher=None, seed=0):
    torch.manual_seed(seed)
    return model(batch, stage, teacher)


@pytest.mark.parametrize("task,shape", [(REG, (6,)), (CLS, (6, 3)), (MUL, (6, 4, 2))])
def test_every_task_trains_both_stages(task, shape):
    torch.manual_seed(0)
    model = EBMC(CFG, DIMS, task)
    batch = make_batch(task)
    out = run(model, batch, 1)
    assert out.pred.shape == shape and out.fused.shape == (6, 16) and out.trust.shape == (6, 3)
    assert set(out.terms) == set(TERM_NAMES) and out.terms["gap"] == 0 and out.terms["imtd"] == 0
    out.loss.backward()
    teacher = model.make_teacher()
    out2 = run(model, batch, 2, teacher)
    assert all(torch.isfinite(v) for v in out2.terms.values())
    assert out2.terms["emc"] > 0 and out2.terms["imtd"] > 0 and set(out2.energy) == set(DIMS)
    model.zero_grad()
    out2.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert model.encoders["audio"].proj.weight.grad.abs().sum() > 0
    assert out2.alpha.sum(1).tolist() == pytest.approx([1.0] * 6)


def test_extra_padding_does_not_change_outputs():
    model = EBMC(CFG, DIMS, REG).eval()
    batch = make_batch(T=9)
    def pad(d, fill):
        return {m: torch.cat([v, torch.full((v.shape[0], 20, *v.shape[2:]), fill, dtype=v.dtype)], 1)
                for m, v in d.items()}

    longer = dataclasses.replace(batch, x=pad(batch.x, 5.0), mask=pad(batch.mask, False))
    a, b = model(batch, 2, model.make_teacher()), model(longer, 2, model.make_teacher())
    assert torch.allclose(a.pred, b.pred, atol=1e-5) and torch.allclose(a.loss, b.loss, atol=1e-5)


@pytest.mark.parametrize("train_mode", [False, True])
def test_absent_modality_cannot_influence_anything(train_mode):
    torch.manual_seed(0)
    model = EBMC(CFG, DIMS, REG).train(train_mode)
    teacher = model.make_teacher()
    batch = make_batch(absent={"audio": [0, 2], "vision": [2, 5]})
    x = dict(batch.x)
    # garbage in the absent rows, even where the mask (wrongly) claims valid steps
    x["audio"] = x["audio"].clone()
    x["audio"][[0, 2]] = torch.randn(2, 9, 3) * 1e3
    mask = dict(batch.mask)
    mask["audio"] = mask["audio"].clone()
    mask["audio"][0] = True
    perturbed = dataclasses.replace(batch, x=x, mask=mask)
    for stage in (1, 2):
        a, b = run(model, batch, stage, teacher), run(model, perturbed, stage, teacher)
        assert torch.equal(a.pred, b.pred) and torch.equal(a.loss, b.loss) and torch.equal(a.trust, b.trust)
        assert a.trust[0, 1] == 0 and a.trust[2, 1] == 0 and a.trust[2, 2] == 0


def test_all_but_one_modality_absent_is_finite():
    torch.manual_seed(0)
    model = EBMC(CFG, DIMS, CLS)
    batch = make_batch(CLS, absent={"audio": range(6), "vision": range(6), "text": [5]})  # row 5: nothing
    out = run(model, batch, 2, model.make_teacher())
    assert torch.isfinite(out.pred).all() and torch.isfinite(out.loss)
    assert out.terms["inv"] == 0 and out.terms["dis"] == 0 and out.terms["gap"] == 0 and out.terms["cce"] == 0
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert out.trust[:5, 0].tolist() == pytest.approx([1.0] * 5) and out.trust[5].tolist() == [0, 0, 0]


def test_two_modality_model():
    dims = {"text": 6, "vision": 4}
    torch.manual_seed(0)
    model = EBMC(CFG, dims, REG)
    out = run(model, make_batch(dims=dims), 2, model.make_teacher())
    assert out.trust.shape == (6, 2) and set(out.energy) == {"text", "vision"}
    out.loss.backward()
    with pytest.raises(ValueError, match="missing from the batch"):
        model(make_batch(dims={"text": 6}), 1)


# switch -> (the terms it must zero, model settings of the reference, the weighted loss it removes)
SWITCHES = {
    "use_msd": (("inv", "dis"), {}, lambda t, w: w.zeta * (t["inv"] + w.lambda1 * t["dis"])),
    "use_cce": (("cce_rec", "cce_task", "cce"), {"cce_in_fusion": False}, lambda t, w: w.beta * t["cce"]),
    "use_emc": (("gap", "grad_pen", "emc"), {}, lambda t, w: w.gamma * t["emc"]),
    "use_imtd": (("imtd",), {}, lambda t, w: w.eta * t["imtd"]),
}


@pytest.mark.parametrize("switch", sorted(SWITCHES))
def test_each_switch_removes_its_term(switch):
    terms, model_kw, removed = SWITCHES[switch]
    base = dataclasses.replace(CFG, dropout=0.0, cce_noise_std=0.0)
    torch.manual_seed(0)
    ref = EBMC(dataclasses.replace(base, **model_kw), DIMS, REG)
    off = EBMC(dataclasses.replace(base, **{switch: False}), DIMS, REG)
    off.load_state_dict(ref.state_dict(), strict=False)
    batch = make_batch(absent={"vision": [1]})
    teacher = ref.make_teacher()
    out_ref, out_off = ref(batch, 2, teacher), off(batch, 2, teacher if switch != "use_imtd" else None)
    assert all(out_ref.terms[t] != 0 for t in terms)        # the term exists when switched on
    assert all(out_off.terms[t] == 0 for t in terms)
    assert out_off.terms["uni"] > 0                          # the unimodal heads always train
    assert torch.allclose(out_ref.loss - removed(out_ref.terms, LossConfig()), out_off.loss, atol=1e-6)
    (out_ref.loss - removed(out_ref.terms, LossConfig())).backward()
    out_off.loss.backward()
    grads = dict(off.named_parameters())
    for name, p in ref.named_parameters():
        if name in grads and p.grad is not None:
            assert torch.allclose(p.grad, grads[name].grad, atol=1e-6), name


def test_trust_fusion_switch_and_stage_one_weights():
    torch.manual_seed(0)
    model = EBMC(dataclasses.replace(CFG, trust_fusion=False), DIMS, REG).eval()
    batch = make_batch(absent={"audio": [3]})
    present = torch.stack([batch.present[m] for m in DIMS], 1).float()
    assert torch.equal(model(batch, 2, model.make_teacher()).trust, present)
    assert torch.equal(model(batch, 1).trust, present)


def test_gradient_penalty_reaches_encoders_and_works_under_no_grad():
    torch.manual_seed(0)
    model = EBMC(dataclasses.replace(CFG, dropout=0.0), DIMS, CLS).eval()
    batch = make_batch(CLS)
    teacher = model.make_teacher()
    out = model(batch, 2, teacher)
    out.terms["grad_pen"].backward()
    assert model.encoders["text"].proj.weight.grad.abs().sum() > 0
    assert model.msd.predictor["text"][0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        val = model(batch, 2, teacher)
    assert val.terms["grad_pen"].item() == pytest.approx(out.terms["grad_pen"].item(), rel=1e-5)
    assert not val.loss.requires_grad


def test_input_stats_normalise_and_non_finite_inputs_are_sanitised():
    torch.manual_seed(0)
    model = EBMC(CFG, DIMS, REG).eval()
    batch = make_batch()
    mean = {m: torch.randn(d) for m, d in DIMS.items()}
    std = {m: torch.rand(d) + 0.5 for m, d in DIMS.items()}
    std["audio"][0] = 0.0                                        # constant feature: std counts as 1
    ref = model(batch, 1).pred
    scaled = {m: v * torch.where(std[m] > 0, std[m], 1.0) + mean[m] for m, v in batch.x.items()}
    model.set_input_stats(mean, std)
    assert torch.allclose(model(dataclasses.replace(batch, x=scaled), 1).pred, ref, atol=1e-4)
    x = dict(scaled)
    x["audio"] = x["audio"].clone()
    x["audio"][0, 0, 1] = float("-inf")
    assert torch.isfinite(model(dataclasses.replace(batch, x=x), 1).pred).all()
    with pytest.raises(ValueError, match=r"std\['vision'\] has shape"):
        model.set_input_stats(mean, {**std, "vision": torch.ones(2)})


def test_stage_two_needs_an_eval_teacher():
    model = EBMC(CFG, DIMS, REG)
    with pytest.raises(ValueError, match="teacher"):
        model(make_batch(), 2)
    with pytest.raises(ValueError, match="eval mode"):
        model(make_batch(), 2, EBMC(CFG, DIMS, REG))


def n_parameters(model):
    return sum(p.numel() for p in model.parameters())


def test_small_preset_is_the_former_default():
    cfg = model_config({"preset": "small"})
    assert 1e6 < n_parameters(EBMC(cfg, {"text": 768, "audio": 5, "vision": 20}, REG)) < 6e6
    assert (cfg.hidden_dim, cfg.encoder_heads, cfg.encoder_ff_mult) == (128, 4, 4)


@pytest.mark.parametrize("dims", [{"text": 768, "audio": 74, "vision": 35},    # the paper's MOSI features
                                  {"text": 768, "audio": 5, "vision": 20}])    # MMSA's MOSI pickle
def test_paper_preset_has_the_papers_parameter_count(dims):
    """Table 6 / App. A.4: the offline EBMC has 6,384,400 parameters on CMU-MOSI."""
    cfg = model_config({"preset": "paper"})
    assert (cfg.hidden_dim, cfg.preset) == (256, "paper") and cfg == ModelConfig()  # the default
    assert abs(n_parameters(EBMC(cfg, dims, REG)) / 6_384_400 - 1) < 0.05
    # explicit settings override the preset's; the rest of the preset stays
    assert model_config({"preset": "paper", "encoder_layers": 1}) == dataclasses.replace(cfg, encoder_layers=1)
    with pytest.raises(ValueError, match="--model.preset = 'huge': use one of paper, small"):
        model_config({"preset": "huge"})


def _padded_reference(enc, x, mask):
    """The encoder as one padded ``nn.TransformerEncoder`` pass (what both layouts must reproduce)."""
    from ebmc.train.model.encoder import pool_steps
    frames = torch.where(mask[..., None] & torch.isfinite(x), (x - enc.mean) / enc.std, torch.zeros_like(x))
    grid, lengths = pool_steps(frames, mask, enc.max_steps)
    S = grid.shape[1]
    valid = torch.arange(S) < lengths[:, None]
    h = enc.proj(grid) + enc.pos[:S]
    attend = valid.clone()
    attend[:, 0] |= lengths == 0
    h = enc.norm(enc.layers(h, src_key_padding_mask=~attend))
    w = valid.to(h.dtype).unsqueeze(-1)
    return (h * w).sum(1) / w.sum(1).clamp(min=1.0)


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("max_steps,T", [(4, 9), (6, 5)])
def test_encoder_equals_padded_transformer_in_both_layouts(max_steps, T, packed, monkeypatch):
    from ebmc.train.model import encoder
    monkeypatch.setattr(encoder, "packs", lambda device: packed)
    torch.manual_seed(0)
    cfg = ModelConfig(hidden_dim=16, max_steps=max_steps, encoder_layers=2, encoder_heads=4, dropout=0.0)
    enc = encoder.ModalityEncoder(5, cfg.hidden_dim, cfg.max_steps, cfg.encoder_heads, cfg.encoder_layers,
                                  cfg.encoder_ff_mult, cfg.dropout)
    enc.mean.normal_()
    enc.std.uniform_(0.5, 2.0)
    x = torch.randn(6, T, 5)
    x[0, 0, 1] = float("-inf")
    mask = torch.arange(T)[None] < torch.tensor([T, 1, 0, 3, T - 1, 2])[:, None]
    mask[4, 1] = False                                                # a hole inside the sequence
    for training in (False, True):
        enc.train(training)
        enc.zero_grad()
        out = enc(x, mask)
        out.square().sum().backward()
        grads = [p.grad.clone() for p in enc.parameters()]
        enc.zero_grad()
        ref = _padded_reference(enc, x, mask)
        ref.square().sum().backward()
        assert torch.allclose(out, ref, atol=1e-5) and out[2].abs().max() == 0
        assert all(torch.allclose(g, p.grad, atol=1e-5) for g, p in zip(grads, enc.parameters()))


def test_cpu_dropout_masks_are_bernoulli_and_follow_the_torch_seed():
    from ebmc.train.model.dropout import dropout, dropout_mask
    torch.manual_seed(5)
    mask = dropout_mask((1000, 1000), 0.1)
    assert mask.unique().tolist() == pytest.approx([0.0, 1 / 0.9])
    assert (mask == 0).float().mean().item() == pytest.approx(0.1, abs=2e-3)   # 7 standard errors
    torch.manual_seed(5)
    assert torch.equal(dropout_mask((1000, 1000), 0.1), mask)
    assert not torch.equal(dropout_mask((1000, 1000), 0.1), mask)
    x = torch.randn(3, 4, 5)
    assert dropout(x, 0.1, training=False) is x and dropout(x, 0.0, training=True) is x
    torch.manual_seed(1)
    out = dropout(x, 0.5, training=True)
    torch.manual_seed(1)
    assert torch.equal(out, x * dropout_mask((3, 4, 5), 0.5))


def test_cpu_attention_with_dropout_is_masked_softmax_attention():
    from ebmc.train.model.dropout import dropout_mask
    from ebmc.train.model.encoder import attention
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 4, generator=g) for _ in range(3))
    attend = torch.tensor([[True, True, True, False, False], [True, False, False, False, False]])
    scores = (q @ k.transpose(-2, -1) / 2.0).masked_fill(~attend[:, None, None, :], float("-inf")).softmax(-1)
    assert torch.allclose(attention(q, k, v, attend, 0.3, training=False), scores @ v, atol=1e-6)
    torch.manual_seed(3)
    out = attention(q, k, v, attend, 0.3, training=True)
    torch.manual_seed(3)
    assert torch.allclose(out, (scores * dropout_mask((2, 2, 5, 5), 0.3)) @ v, atol=1e-6)
