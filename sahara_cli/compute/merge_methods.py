"""The merge methods, one tensor at a time, in float64 numpy.

Each function takes the same tensor of every input (and of the base) and returns the
merged tensor. ``docs/compute.md`` gives the formulas; the notation here is the same:
θᵢ the inputs, θ₀ the base, τᵢ = θᵢ - θ₀ the task vectors, wᵢ the weights, λ the
scale, Fᵢ the diagonal Fisher information.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("average", "task-arithmetic", "ties", "fisher")
#: Methods that work on task vectors and so need a base (a full model's ``--base``; an
#: adapter's base is implied, its delta is the task vector).
NEEDS_BASE = ("task-arithmetic", "ties")


def average(thetas: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Σ wᵢθᵢ / Σ wᵢ: the weighted mean (weights are normalised)."""
    total = np.zeros_like(thetas[0])
    for theta, w in zip(thetas, weights, strict=True):
        total += w * theta
    return total / float(sum(weights))


def task_arithmetic(taus: Sequence[np.ndarray], weights: Sequence[float], lam: float) -> np.ndarray:
    """λ Σ wᵢτᵢ: the merged task vector (weights are not normalised)."""
    total = np.zeros_like(taus[0])
    for tau, w in zip(taus, weights, strict=True):
        total += w * tau
    return lam * total


def trim(tau: np.ndarray, density: float) -> np.ndarray:
    """Keep the k = max(1, ⌊density·n⌋) entries of largest magnitude, zero the rest.

    Ties in magnitude keep the entry that comes first in row-major order.
    """
    if density >= 1.0 or tau.size == 0:
        return tau.copy()
    k = max(1, int(density * tau.size))
    flat = tau.reshape(-1)
    keep = np.argsort(-np.abs(flat), kind="stable")[:k]
    out = np.zeros_like(flat)
    out[keep] = flat[keep]
    return out.reshape(tau.shape)


def ties(
    taus: Sequence[np.ndarray], weights: Sequence[float], density: float, lam: float
) -> np.ndarray:
    """TIES-merging (Yadav et al., 2023) of task vectors, weighted.

    1. trim: t̂ᵢ = wᵢ · trim(τᵢ, density);
    2. elect: e = sign(Σ t̂ᵢ), +1 where the sum is 0 (the sign of larger total mass);
    3. disjoint mean: τ = Σ t̂ᵢ·[sign(t̂ᵢ) = e] / Σ wᵢ·[sign(t̂ᵢ) = e] (0 where no
       input agrees); the merged task vector is λτ.
    With all weights 1 this is the paper's method; it is mergekit's ``ties`` with
    ``normalize: true``.
    """
    trimmed = [w * trim(tau, density) for tau, w in zip(taus, weights, strict=True)]
    total = np.zeros_like(taus[0])
    for t in trimmed:
        total += t
    elected = np.where(total >= 0, 1.0, -1.0)
    numerator = np.zeros_like(total)
    divisor = np.zeros_like(total)
    for t, w in zip(trimmed, weights, strict=True):
        agree = np.sign(t) == elected
        numerator += np.where(agree, t, 0.0)
        divisor += np.where(agree, w, 0.0)
    divisor[divisor == 0] = 1.0
    merged: np.ndarray = lam * (numerator / divisor)
    return merged


def fisher(
    thetas: Sequence[np.ndarray], fishers: Sequence[np.ndarray], weights: Sequence[float]
) -> np.ndarray:
    """Fisher-weighted averaging (Matena & Raffel, 2022), per element.

    θ = Σ wᵢFᵢθᵢ / Σ wᵢFᵢ; where Σ wᵢFᵢ is 0 (no input has information on the
    element, e.g. an embedding row no text used) it falls back to the weighted mean.
    """
    numerator = np.zeros_like(thetas[0])
    denominator = np.zeros_like(thetas[0])
    for theta, f, w in zip(thetas, fishers, weights, strict=True):
        numerator += w * f * theta
        denominator += w * f
    fallback = average(thetas, weights)
    safe = np.where(denominator > 0, denominator, 1.0)
    merged: np.ndarray = np.where(denominator > 0, numerator / safe, fallback)
    return merged
