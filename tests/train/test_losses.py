"""Each EBMC loss primitive on a tiny hand-checked example; the EMC penalty against finite differences."""
import math

import pytest
import torch

from ebmc.train.losses import disentangle, info_nce, task_loss, unimodal_loss
from ebmc.train.model.emc import energy_gap, gradient_penalty, modality_energies, sample_energy
from ebmc.train.model.encoder import pool_steps
from ebmc.train.model.imtd import divergence, imtd_loss, trust_weights

T, F_ = True, False


def test_task_losses():
    assert task_loss("regression", torch.tensor([1.0, 2.0]), torch.tensor([0.0, 4.0])).tolist() == [1.0, 2.0]
    ce = task_loss("classification", torch.tensor([[0.0, math.log(3)]]), torch.tensor([1]))
    assert ce.item() == pytest.approx(-math.log(0.75))
    ml = task_loss("multilabel", torch.tensor([[[0.0, math.log(3)], [0.0, 0.0]]]), torch.tensor([[1, 0]]))
    assert ml.item() == pytest.approx((-math.log(0.75) + math.log(2)) / 2)


def test_unimodal_regression_loss_and_detached_mean():
    raw = torch.tensor([[[1.0, 0.0]]], requires_grad=True)          # mean 1, log-variance 0
    loss = unimodal_loss("regression", raw, torch.tensor([0.0]))
    assert loss.item() == pytest.approx(1.0 + 0.5 * (0.0 + 1.0))       # L1 + Gaussian NLL
    loss.sum().backward()
    assert raw.grad[0, 0, 0].item() == pytest.approx(1.0)             # only the L1 moves the mean
    assert raw.grad[0, 0, 1].item() == pytest.approx(0.5 - 0.5)       # d/dlogvar 0.5(lv + r^2 e^-lv)


def test_info_nce_hand_value_and_single_modality_samples_skipped():
    zc = torch.tensor([[[1.0, 0.0], [2.0, 0.0]], [[0.0, 1.0], [0.0, 3.0]], [[5.0, 5.0], [-1.0, 7.0]]])
    present = torch.tensor([[T, T], [T, T], [T, F_]])
    tau = 0.5
    expected = math.log(1 + math.exp(-1 / tau))                       # cos 1 to own, 0 to the other
    assert info_nce(zc, present, tau).item() == pytest.approx(expected)
    assert info_nce(zc[2:], present[2:], tau).item() == 0.0


def test_disentangle_hand_value():
    zs = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [9.0, 9.0]], [[1.0, 0.0], [0.0, 1.0], [3.0, 1.0]]])
    present = torch.tensor([[T, T, F_], [T, T, F_]])
    assert disentangle(zs, present).item() == pytest.approx((0.5 + 0.0) / 2)


def test_trust_weights_hand_value():
    alpha = trust_weights(torch.tensor([[0.0, 1.0, 0.3]]), torch.tensor([[T, T, F_]]))
    s0, s1 = 1 / 0.1, math.exp(-1) / (math.log(2) + 0.1)
    assert alpha[0].tolist() == pytest.approx([s0 / (s0 + s1), s1 / (s0 + s1), 0.0])
    assert trust_weights(torch.ones(1, 2), torch.tensor([[F_, F_]])).tolist() == [[0.0, 0.0]]


def test_imtd_divergence_and_loss():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[[0.0, math.log(3)], [0.0, 0.0]]])        # (B=1, M=2, K=2)
    d = divergence("classification", student, teacher, tau=1.0)
    assert d[0].tolist() == pytest.approx([0.5 * math.log(4 / 3), 0.0])
    d2 = divergence("classification", student, teacher, tau=2.0)
    q = torch.softmax(torch.tensor([0.0, math.log(3) / 2]), 0)
    assert d2[0, 0].item() == pytest.approx(4 * (0.5 * math.log(0.5 / q[0]) + 0.5 * math.log(0.5 / q[1])))
    reg = divergence("regression", torch.tensor([1.0, 2.0]), torch.tensor([[[0.0, 0.], [3.0, 0.]],
                                                                             [[2.0, 0.], [0.0, 0.]]]), 1.0)
    assert reg.tolist() == [[1.0, 4.0], [0.0, 4.0]]
    alpha = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    loss = imtd_loss("regression", torch.tensor([1.0, 2.0]),
                     torch.tensor([[[0.0, 0.], [3.0, 0.]], [[2.0, 0.], [0.0, 0.]]]), alpha, 1.0)
    assert loss.item() == pytest.approx((0.5 * 1 + 1.0 * 0) / 2 + (0.5 * 4 + 0.0 * 4) / 2)


def test_energy_hand_value_gap_and_pair_skipping():
    z = torch.tensor([[[1.0, 1.0]], [[2.0, 0.0]]])                     # (B=2, M=1, H=2)
    raw = torch.tensor([[[0.5, 0.0]], [[0.0, 2.0]]])                  # regression mean, log-variance
    e = sample_energy("regression", z, raw, torch.tensor([0.0, 1.0]), a=1.0, b=2.0, c=3.0)
    gauss = 0.5 * math.log(2 * math.pi * math.e)
    assert e[:, 0].tolist() == pytest.approx([1.0 + 2 * 0.5 + 3 * gauss, 2.0 + 2 * 1.0 + 3 * (gauss + 1.0)])
    assert energy_gap(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([T, T, T])).item() == 1 + 9 + 4
    assert energy_gap(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([T, F_, T])).item() == 9
    energy = torch.tensor([[1.0, 3.0], [100.0, 7.0], [5.0, 5.0]])
    present = torch.tensor([[T, T], [F_, T], [T, T]])                  # sample 1 has one modality
    means, has = modality_energies(energy, present)
    assert means.tolist() == [3.0, 4.0] and has.tolist() == [T, T]


def test_gradient_penalty_of_the_norm_term_by_hand():
    z = torch.tensor([[[1.0, 2.0], [3.0, 0.0]]], requires_grad=True)
    present = torch.tensor([[T, F_]])
    energy = 1.5 * z.pow(2).sum(-1) / 2                                # a = 1.5, H = 2
    pen = gradient_penalty(energy, z, present)
    assert pen.item() == pytest.approx((1.5 * 1.0) ** 2 * (1 + 4))   # ||2 a z / H||^2 of the present one


def test_gradient_penalty_double_backprop_matches_finite_differences():
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    z = torch.randn(4, 2, 3, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 1])
    present = torch.tensor([[T, T], [T, F_], [T, T], [F_, T]])
    params = list(head.parameters())

    def penalty_of(*ps):
        zz = z.clone().requires_grad_()
        raw = torch.func.functional_call(head, dict(zip([n for n, _ in head.named_parameters()], ps)), (zz,))
        energy = sample_energy("classification", zz, raw, y, a=1.0, b=1.0, c=1.0)
        return gradient_penalty(energy, zz, present)

    assert torch.autograd.gradcheck(penalty_of, tuple(p.detach().clone().requires_grad_() for p in params))

    def penalty_of_z(zz):
        return gradient_penalty(sample_energy("classification", zz, head(zz), y, 1.0, 1.0, 1.0), zz, present)

    assert torch.autograd.gradcheck(penalty_of_z, (z.clone().requires_grad_(),))


def test_pool_steps_pools_runs_of_valid_frames_and_ignores_padding():
    x = torch.arange(7, dtype=torch.float32).reshape(1, 7, 1)
    mask = torch.tensor([[T, T, T, T, T, F_, F_]])
    frames = x * mask[..., None]
    out, lengths = pool_steps(frames, mask, max_steps=2)              # 5 frames, stride 3
    assert out[0, :, 0].tolist() == [1.0, 3.5] and lengths.tolist() == [2]
    padded = torch.cat([frames, torch.zeros(1, 5, 1)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, 5, dtype=torch.bool)], 1)
    assert torch.equal(pool_steps(padded, padded_mask, max_steps=2)[0], out)
    short = torch.tensor([[T, T, F_, F_, F_, F_, F_]])
    out, lengths = pool_steps(x * short[..., None], short, max_steps=4)
    assert out[0, :, 0].tolist() == [0.0, 1.0, 0.0, 0.0] and lengths.tolist() == [2]
    # several samples, one empty, one with a hole: each pools its own valid frames in order, left-aligned
    batch = torch.arange(21, dtype=torch.float32).reshape(3, 7, 1)
    mask = torch.tensor([[T, T, T, T, T, T, T], [F_] * 7, [T, F_, T, T, F_, F_, F_]])
    out, lengths = pool_steps(batch * mask[..., None], mask, max_steps=3)  # 7 frames -> stride 3; 3 -> 1
    assert lengths.tolist() == [3, 0, 3]
    assert out[..., 0].tolist() == [[1.0, 4.0, 6.0], [0.0, 0.0, 0.0], [14.0, 16.0, 17.0]]


def test_cce_others_mean_uses_only_other_present_modalities():
    from ebmc.train.model.cce import others_mean
    z = torch.tensor([[[1.0], [3.0], [100.0]], [[2.0], [50.0], [60.0]]])
    present = torch.tensor([[T, T, F_], [T, F_, F_]])
    assert others_mean(z, present)[..., 0].tolist() == [[3.0, 1.0, 2.0], [0.0, 2.0, 2.0]]
