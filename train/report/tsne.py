"""Exact t-SNE (van der Maaten & Hinton 2008) in numpy, for the Fig. 3 embedding plot without scikit-learn.

O(N^2) memory and time per iteration: meant for the at most ``embedding_points`` (default 1000)
fused vectors a run keeps. Deterministic for a given seed.
"""
from __future__ import annotations

import numpy as np


def _affinities(x: np.ndarray, perplexity: float) -> np.ndarray:
    """Symmetric joint probabilities P (N, N) with a per-point Gaussian bandwidth matching ``perplexity``."""
    n = x.shape[0]
    sq = np.sum(x * x, axis=1)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    target = np.log(perplexity)
    P = np.zeros((n, n))
    for i in range(n):
        d = np.delete(dist[i], i)
        lo, hi, beta = 0.0, np.inf, 1.0
        for _ in range(64):  # bisection on the precision beta = 1 / (2 sigma^2)
            p = np.exp(-(d - d.min()) * beta)
            s = p.sum()
            entropy = np.log(s) + beta * np.sum((d - d.min()) * p) / s
            if abs(entropy - target) < 1e-5:
                break
            if entropy > target:
                lo, beta = beta, beta * 2 if hi == np.inf else (beta + hi) / 2
            else:
                hi, beta = beta, (beta + lo) / 2
        P[i, np.arange(n) != i] = p / s
    P = (P + P.T) / (2 * n)
    return np.maximum(P, 1e-12)


def tsne(x: np.ndarray, dims: int = 2, perplexity: float = 30.0, iterations: int = 500, seed: int = 0) -> np.ndarray:
    """Embed ``x`` (N, D) into (N, dims). ``perplexity`` is capped at (N - 1) / 3 for small N."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got {n}")
    x = (x - x.mean(0)) / max(x.std(), 1e-12)
    P = _affinities(x, min(perplexity, (n - 1) / 3))
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1e-4, (n, dims))
    velocity, gains = np.zeros_like(y), np.ones_like(y)
    for it in range(iterations):
        exaggeration = 12.0 if it < 100 else 1.0  # early exaggeration forms the clusters first
        momentum = 0.5 if it < 100 else 0.8
        sq = np.sum(y * y, axis=1)
        num = 1.0 / (1.0 + sq[:, None] + sq[None, :] - 2 * y @ y.T)
        np.fill_diagonal(num, 0.0)
        Q = np.maximum(num / num.sum(), 1e-12)
        W = (exaggeration * P - Q) * num
        grad = 4.0 * (np.diag(W.sum(1)) - W) @ y
        gains = np.where(np.sign(grad) != np.sign(velocity), gains + 0.2, gains * 0.8).clip(0.01)
        velocity = momentum * velocity - 200.0 * gains * grad
        y = y + velocity
        y -= y.mean(0)
    return y
