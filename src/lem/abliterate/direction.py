"""The refusal direction of each layer, kept clear of what harmless prompts use.

Per layer, from the last-token states of harmful (B) and harmless (G) prompts:

    r = mean(B) - mean(G)                        difference of means (heretic's direction)
    Q = orthonormal basis of [U_k, mean(G)]      U_k: top-k principal directions of G;
                                                 mean(G) only with `orthogonalize`
    r = (I - Q Q^T) r,  then  r = r / |r|

Removing r from what the layers write then cannot remove the k directions along which
harmless prompts differ most from each other (nor, optionally, their mean), which is
where editing the plain direction costs harmless behaviour. Both constraints are
projected out together, so r ends orthogonal to all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lem.errors import LemError

NORM_FLOOR = 1e-6  # a direction shorter than this is noise, not a refusal signal


@dataclass(frozen=True)
class Directions:
    """Unit refusal directions, one per layer (layers, hidden), and how they were made."""

    vectors: np.ndarray
    mean_gap: np.ndarray  # |mean(B) - mean(G)| per layer: how far apart the two sets sit
    benign_rank: int
    orthogonalize: bool


def benign_basis(harmless: np.ndarray, k: int) -> np.ndarray:
    """The top-k principal directions of harmless states (n, hidden) as columns (hidden, k)."""
    if k == 0:
        return np.zeros((harmless.shape[1], 0))
    if k > harmless.shape[0] - 1:
        raise LemError(
            f"benign_rank {k}: needs at least {k + 1} harmless prompts, "
            f"got {harmless.shape[0]}; lower --benign-rank or raise --n-train"
        )
    centred = harmless - harmless.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return vt[:k].T


def layer_direction(
    harmful: np.ndarray, harmless: np.ndarray, benign_rank: int, orthogonalize: bool
) -> tuple[np.ndarray, float]:
    """One layer's unit direction from (n, hidden) states, and the raw mean gap."""
    harmful, harmless = harmful.astype(np.float64), harmless.astype(np.float64)
    r = harmful.mean(axis=0) - harmless.mean(axis=0)
    gap = float(np.linalg.norm(r))
    keep_clear = [benign_basis(harmless, benign_rank)]
    if orthogonalize:
        keep_clear.append(harmless.mean(axis=0)[:, None])
    basis = np.concatenate(keep_clear, axis=1)
    if basis.shape[1]:
        q, _ = np.linalg.qr(basis)
        r = r - q @ (q.T @ r)
    norm = float(np.linalg.norm(r))
    if norm < NORM_FLOOR:
        raise LemError(
            f"the harmful and harmless prompts give no direction (length {norm:.1e}); "
            "check that the model refuses the harmful prompts"
        )
    return r / norm, gap


def refusal_directions(
    harmful: np.ndarray, harmless: np.ndarray, benign_rank: int = 8, orthogonalize: bool = False
) -> Directions:
    """Directions for every layer from (prompts, layers, hidden) states of both sets."""
    pairs = [
        layer_direction(harmful[:, i], harmless[:, i], benign_rank, orthogonalize)
        for i in range(harmful.shape[1])
    ]
    vectors = np.stack([v for v, _ in pairs]).astype(np.float32)
    gaps = np.array([g for _, g in pairs], dtype=np.float32)
    return Directions(vectors, gaps, benign_rank, orthogonalize)


def save_directions(path: Path, d: Directions) -> None:
    """Write directions to an .npz file, whole or not at all (any trial's edit is rebuilt
    from it)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(
            f,
            vectors=d.vectors,
            mean_gap=d.mean_gap,
            benign_rank=d.benign_rank,
            orthogonalize=d.orthogonalize,
        )
    os.replace(tmp, path)


def load_directions(path: Path) -> Directions:
    with np.load(path) as z:
        return Directions(
            z["vectors"], z["mean_gap"], int(z["benign_rank"]), bool(z["orthogonalize"])
        )
