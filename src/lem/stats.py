"""Statistics for honest reports: intervals for one model, paired tests between two.

Everything is numpy only (scipy is not a dependency), small enough to check by hand:

- `wilson`: the Wilson score interval for a proportion; sensible at 0/n and n/n, where the
  textbook normal interval collapses to a point.
- `bootstrap_ci`: percentile bootstrap of the mean of 1-10 scores, seeded, so a report
  is reproducible to the digit.
- `mcnemar_exact`: the exact (binomial) McNemar test for paired right/wrong outcomes.
- `wilcoxon_signed_rank`: the paired test for judge scores. Zero differences are dropped
  (Wilcoxon's convention); tied magnitudes get mid-ranks. Up to `EXACT_MAX` non-zero
  pairs the p-value is exact: the null distribution of the signed-rank sum is built by
  dynamic programming over the observed (mid-)ranks, so ties are handled exactly. Above
  that the normal approximation with the tie-corrected variance and a continuity
  correction is used.
- `paired_bootstrap_ci`: percentile bootstrap of the mean paired difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal
EXACT_MAX = 400  # exact Wilcoxon up to this many non-zero differences (DP stays tiny)
RESAMPLES = 10_000


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for `successes` out of `n` (95% by default)."""
    if n <= 0:
        raise ValueError("wilson needs n >= 1")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..{n}, got {successes}")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # Clamp float noise at the ends so 0/n gives exactly 0 and n/n exactly 1.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def bootstrap_ci(
    values: Sequence[float], resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded: the same input gives the same CI)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    rng = np.random.default_rng(seed)
    means = _resampled_means(x, resamples, rng)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _resampled_means(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    # In chunks, so 10,000 resamples of a few thousand items stay a few MB.
    chunk = max(1, 2_000_000 // max(1, x.size))
    out = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        idx = rng.integers(0, x.size, size=(size, x.size))
        out.append(x[idx].mean(axis=1))
    return np.concatenate(out)


def paired_bootstrap_ci(
    a: Sequence[float],
    b: Sequence[float],
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(b - a) over pairs (items resampled as pairs)."""
    x, y = _paired(a, b)
    return bootstrap_ci(y - x, resamples=resamples, seed=seed, level=level)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    `b`: pairs right under the first condition only, `c`: right under the second only.
    Under the null each discordant pair is a fair coin: p = 2 * P(X <= min(b, c)),
    X ~ Binomial(b + c, 1/2), capped at 1. No discordant pairs: p = 1.
    """
    if b < 0 or c < 0:
        raise ValueError("counts must be >= 0")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    # Exact integer arithmetic, one division at the end.
    return min(1.0, 2 * tail / 2**n)


@dataclass
class SignedRank:
    """The result of a Wilcoxon signed-rank test."""

    statistic: float  # W+: the sum of the ranks of the positive differences
    p_value: float
    n: int  # pairs with a non-zero difference (zeros are dropped)
    zeros: int
    method: str  # "exact" or "normal"


def wilcoxon_signed_rank(a: Sequence[float], b: Sequence[float]) -> SignedRank:
    """Two-sided Wilcoxon signed-rank test of b - a (see the module docstring)."""
    x, y = _paired(a, b)
    d = y - x
    nonzero = d[d != 0]
    zeros = int(d.size - nonzero.size)
    n = int(nonzero.size)
    if n == 0:
        return SignedRank(0.0, 1.0, 0, zeros, "exact")
    ranks = _midranks(np.abs(nonzero))
    w_plus = float(ranks[nonzero > 0].sum())
    if n <= EXACT_MAX:
        p = _exact_signed_rank_p(ranks, w_plus)
        return SignedRank(w_plus, p, n, zeros, "exact")
    return SignedRank(w_plus, _normal_signed_rank_p(ranks, w_plus), n, zeros, "normal")


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(values.size, dtype=float)
    start = 0
    while start < values.size:
        end = start
        while end + 1 < values.size and sorted_vals[end + 1] == sorted_vals[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def _exact_signed_rank_p(ranks: np.ndarray, w_plus: float) -> float:
    """Exact two-sided p from the sign-flip distribution of W+ over the observed ranks."""
    # Mid-ranks are multiples of 1/2, so twice the ranks are integers: the distribution of
    # 2*W+ is a polynomial product, built one rank at a time with probabilities (no overflow).
    doubled = np.rint(ranks * 2).astype(int)
    dist = np.zeros(int(doubled.sum()) + 1)
    dist[0] = 1.0
    reach = 0
    for r in doubled:
        nxt = dist.copy() * 0.5
        nxt[r : reach + r + 1] += dist[: reach + 1] * 0.5
        dist = nxt
        reach += r
    observed = int(round(w_plus * 2))
    lower = dist[: observed + 1].sum()
    upper = dist[observed:].sum()
    return float(min(1.0, 2 * min(lower, upper)))


def _normal_signed_rank_p(ranks: np.ndarray, w_plus: float) -> float:
    """Normal approximation: tie-corrected variance (sum of squared ranks), continuity 0.5."""
    mean = ranks.sum() / 2
    sd = math.sqrt((ranks**2).sum() / 4)
    z = (abs(w_plus - mean) - 0.5) / sd
    return float(min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2))))


def _paired(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("paired samples must be 1-D and of equal length")
    if x.size == 0:
        raise ValueError("paired samples are empty")
    return x, y


def confusion_counts(
    labels_a: Sequence[str], labels_b: Sequence[str]
) -> dict[tuple[str, str], int]:
    """How often each (label in a, label in b) pair occurs, over items paired by position."""
    if len(labels_a) != len(labels_b):
        raise ValueError("the two label lists must be of equal length")
    counts: dict[tuple[str, str], int] = {}
    for a, b in zip(labels_a, labels_b, strict=True):
        counts[(a, b)] = counts.get((a, b), 0) + 1
    return counts


def cohen_kappa(labels_a: Sequence[str], labels_b: Sequence[str]) -> float:
    """Cohen's kappa between two raters' labels of the same items.

    kappa = (p_o - p_e) / (1 - p_e): p_o the observed agreement, p_e the agreement
    expected by chance from each rater's label frequencies. 1 is perfect agreement,
    0 what chance gives. When both raters give one and the same label to every item
    (p_e = 1) kappa is undefined; it is returned as 1.0 then, as the raters agree.
    """
    if not labels_a:
        raise ValueError("cohen_kappa needs at least one item")
    counts = confusion_counts(labels_a, labels_b)
    n = len(labels_a)
    observed = sum(c for (a, b), c in counts.items() if a == b) / n
    freq_a: dict[str, int] = {}
    freq_b: dict[str, int] = {}
    for (a, b), c in counts.items():
        freq_a[a] = freq_a.get(a, 0) + c
        freq_b[b] = freq_b.get(b, 0) + c
    expected = sum(freq_a[k] * freq_b.get(k, 0) for k in freq_a) / (n * n)
    if expected == 1.0:
        return 1.0
    return (observed - expected) / (1 - expected)
