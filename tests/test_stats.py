"""lem.stats against values worked out by hand (formulas in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lem import stats


def test_wilson_7_of_10_by_hand():
    # p=0.7, z^2=3.8415: centre (0.7 + z^2/20) / (1 + z^2/10) = 0.64449,
    # half z/(1 + z^2/10) * sqrt(0.021 + z^2/400) = 0.24772.
    low, high = stats.wilson(7, 10)
    assert low == pytest.approx(0.39678, abs=1e-5)
    assert high == pytest.approx(0.89221, abs=1e-5)


def test_wilson_edges_are_exact_and_not_degenerate():
    # 0/10: low is exactly 0, high = z^2/(n + z^2) = 3.8415/13.8415 = 0.27753.
    assert stats.wilson(0, 10) == (0.0, pytest.approx(0.27753, abs=1e-5))
    low, high = stats.wilson(10, 10)
    assert high == 1.0 and low == pytest.approx(1 - 0.27753, abs=1e-5)
    # One item: still a wide, proper interval.
    assert stats.wilson(1, 1) == (pytest.approx(0.20654, abs=1e-5), 1.0)


def test_wilson_rejects_bad_counts():
    with pytest.raises(ValueError):
        stats.wilson(0, 0)
    with pytest.raises(ValueError):
        stats.wilson(11, 10)


def test_mcnemar_exact_small_tables_by_hand():
    # b=1, c=6: 2 * (C(7,0) + C(7,1)) / 2^7 = 2 * 8 / 128.
    assert stats.mcnemar_exact(1, 6) == pytest.approx(0.125)
    assert stats.mcnemar_exact(6, 1) == pytest.approx(0.125)
    # b=0, c=5: 2 / 32.
    assert stats.mcnemar_exact(0, 5) == pytest.approx(0.0625)
    # Balanced or empty: no evidence at all.
    assert stats.mcnemar_exact(3, 3) == 1.0
    assert stats.mcnemar_exact(0, 0) == 1.0
    # b=2, c=10: 2 * (1 + 12 + 66) / 4096.
    assert stats.mcnemar_exact(2, 10) == pytest.approx(158 / 4096)


def test_wilcoxon_tiny_example_by_hand():
    # Differences 1, 2, -3, 4, 5: ranks 1..5, W+ = 12. Sign-flip subsets with W- <= 3:
    # {}, {1}, {2}, {3}, {1,2} -> 5 of 32, two-sided 10/32.
    result = stats.wilcoxon_signed_rank([0, 0, 0, 0, 0], [1, 2, -3, 4, 5])
    assert result.statistic == 12
    assert result.p_value == pytest.approx(10 / 32)
    assert (result.n, result.zeros, result.method) == (5, 0, "exact")


def test_wilcoxon_ties_and_zeros():
    # a -> b differences 1, 2, 0, 3, 0, 3: zeros dropped; |d| 1, 2, 3, 3 get ranks 1, 2, 3.5,
    # 3.5. All positive: W+ = 10 is the maximum, reached by 1 of 16 sign patterns: p = 2/16.
    result = stats.wilcoxon_signed_rank([5, 6, 7, 4, 5, 6], [6, 8, 7, 7, 5, 9])
    assert result.statistic == 10
    assert result.p_value == pytest.approx(0.125)
    assert (result.n, result.zeros) == (4, 2)


def test_wilcoxon_all_equal_is_p_one():
    result = stats.wilcoxon_signed_rank([3, 4, 5], [3, 4, 5])
    assert result.p_value == 1.0 and result.n == 0


def test_wilcoxon_normal_branch_matches_exact_where_both_apply(monkeypatch):
    rng = np.random.default_rng(0)
    a = rng.integers(1, 11, 120)
    b = np.clip(a + rng.integers(-2, 3, 120), 1, 10)  # a small shift: p in the tens of percent
    exact = stats.wilcoxon_signed_rank(a, b)
    monkeypatch.setattr(stats, "EXACT_MAX", 10)
    normal = stats.wilcoxon_signed_rank(a, b)
    assert normal.method == "normal" and exact.method == "exact"
    assert 0.01 < exact.p_value < 0.9
    assert normal.p_value == pytest.approx(exact.p_value, abs=0.02)


def test_bootstrap_ci_contains_the_mean_and_is_seed_stable():
    values = [3.2, 5.1, 7.0, 7.4, 8.8, 9.1, 4.3, 6.6, 6.0, 9.9]
    low, high = stats.bootstrap_ci(values, seed=0)
    assert low < np.mean(values) < high
    assert (low, high) == stats.bootstrap_ci(values, seed=0)
    assert stats.bootstrap_ci(values, seed=1) != (low, high)
    # The percentile interval of a mean lies within the data's range and is narrower.
    assert 3.2 < low and high < 9.9 and high - low < 4


def test_bootstrap_ci_of_constant_values_is_a_point():
    assert stats.bootstrap_ci([7, 7, 7]) == (7.0, 7.0)


def test_paired_bootstrap_ci_of_the_difference():
    a = [5, 6, 7, 4, 5, 6]
    b = [6, 8, 7, 7, 5, 9]
    low, high = stats.paired_bootstrap_ci(a, b, seed=0)
    assert low <= 1.5 <= high  # the mean paired difference
    assert low >= 0  # every difference is >= 0, so no resample mean is below 0
    with pytest.raises(ValueError):
        stats.paired_bootstrap_ci([1, 2], [1])


def test_exact_distribution_sums_to_one():
    # Internal check of the DP: the sign-flip distribution over mid-ranks is a distribution.
    ranks = np.array([1.0, 2.5, 2.5, 4.0])
    assert stats._exact_signed_rank_p(ranks, 5.0) <= 1.0
    assert math.isclose(stats._exact_signed_rank_p(ranks, 0.0), 2 / 16)


def test_cohen_kappa_by_hand():
    # 2x2 table: yes/yes 20, yes/no 5, no/yes 10, no/no 15 (n = 50).
    # p_o = 35/50 = 0.7; a says yes 25, b says yes 30: p_e = (25*30 + 25*20) / 2500 = 0.5.
    # kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert stats.cohen_kappa(a, b) == pytest.approx(0.4)
    assert stats.confusion_counts(a, b) == {
        ("yes", "yes"): 20,
        ("yes", "no"): 5,
        ("no", "yes"): 10,
        ("no", "no"): 15,
    }


def test_cohen_kappa_three_labels_by_hand():
    # a: r r r p p c c c c c; b: r r p p c c c c c r.
    # p_o = 7/10; a: r3 p2 c5, b: r3 p2 c5 -> p_e = (9 + 4 + 25) / 100 = 0.38.
    # kappa = (0.7 - 0.38) / 0.62 = 0.516129...
    a = list("rrrppccccc")
    b = list("rrppcccccr")
    assert stats.cohen_kappa(a, b) == pytest.approx(0.32 / 0.62)


def test_cohen_kappa_edges():
    assert stats.cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == 1.0
    # Both raters give one label to everything: agreement, kappa taken as 1.
    assert stats.cohen_kappa(["a", "a"], ["a", "a"]) == 1.0
    # Systematic disagreement on two labels: p_o = 0, p_e = 0.5 -> kappa = -1.
    assert stats.cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        stats.cohen_kappa([], [])
    with pytest.raises(ValueError):
        stats.cohen_kappa(["a"], ["a", "b"])
