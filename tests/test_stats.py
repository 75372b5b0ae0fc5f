"""Statistics over seeds, checked against scipy.stats on hand-made numbers."""

import math

import numpy as np
import pytest
from scipy import stats as sp

from noisemod.analysis.stats import compare, holm, permutation_p, ratio, spearman, summarize

A = [0.121, 0.134, 0.118, 0.129, 0.140]
B = [0.101, 0.097, 0.112, 0.095]


def test_summary_is_the_mean_std_and_t_interval():
    s = summarize(A)
    assert (s.n, s.mean, s.std) == (5, pytest.approx(np.mean(A)), pytest.approx(np.std(A, ddof=1)))
    low, high = sp.t.interval(0.95, 4, loc=np.mean(A), scale=sp.sem(A))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))
    one = summarize([0.5])
    assert (one.n, one.mean, one.std, one.ci_low, one.ci_high) == (1, 0.5, 0.0, None, None)


def test_welch_p_and_interval_match_scipy():
    c = compare(A, B)
    ref = sp.ttest_ind(A, B, equal_var=False)
    assert c.diff == pytest.approx(np.mean(A) - np.mean(B)) and c.p_welch == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval(0.95)
    assert (c.ci_low, c.ci_high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_the_permutation_test_is_exact_and_matches_scipy():
    ref = sp.permutation_test(
        (A, B), lambda x, y: np.mean(x) - np.mean(y), permutation_type="independent", n_resamples=np.inf
    )
    assert permutation_p(A, B) == pytest.approx(ref.pvalue)
    # every value of a above every value of b: only the observed split (and none other) is as extreme
    assert permutation_p([3, 4, 5], [0, 1, 2]) == pytest.approx(2 / math.comb(6, 3))  # two-sided: both extremes
    c = compare(A, B)
    assert c.p == max(c.p_welch, c.p_permutation)
    big = compare(list(range(11)), list(range(11)))
    assert big.p_permutation is None and big.p == big.p_welch


def test_holm_matches_the_step_down_rule():
    cs = [compare(A, B), compare(B, A[:4]), compare([1, 2, 3], [1.1, 2.1, 2.9])]
    ps = [c.p for c in cs]
    order = np.argsort(ps)
    expected, running = [0.0] * 3, 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (3 - k) * ps[i]))
        expected[i] = running
    assert [c.p_holm for c in holm(cs)] == pytest.approx(expected)
    assert holm([compare([1.0], [2.0])])[0].p_holm == pytest.approx(1.0)  # one split each way: p = 1


@pytest.mark.parametrize("bad", [[], [float("nan")], [1.0, float("inf")]])
def test_bad_values_are_refused_naming_them(bad):
    with pytest.raises(ValueError, match="expected finite numbers"):
        summarize(bad)


def test_spearman_matches_scipy_with_a_fisher_interval_by_hand():
    x = [0.10, 0.12, 0.11, 0.20, 0.18, 0.15, 0.13]
    y = [0.60, 0.62, 0.70, 0.90, 0.85, 0.61, 0.75]
    c = spearman(x, y)
    ref = sp.spearmanr(x, y)
    assert (c.n, c.rho, c.p) == (7, pytest.approx(ref.statistic), pytest.approx(ref.pvalue))
    # by hand: ranks of x 1 3 2 7 6 5 4, of y 1 3 4 7 6 2 5; d^2 = 0 0 4 0 0 9 1 = 14; rho = 1 - 6*14/(7*48)
    assert c.rho == pytest.approx(1 - 6 * 14 / (7 * 48))
    half = 1.959963984540054 * math.sqrt(1.06 / 4)
    assert (c.ci_low, c.ci_high) == (
        pytest.approx(math.tanh(math.atanh(c.rho) - half)),
        pytest.approx(math.tanh(math.atanh(c.rho) + half)),
    )
    assert c.ci_low < c.rho < c.ci_high
    three = spearman([1, 2, 3], [3, 1, 2])
    assert three.ci_low is None and three.rho == pytest.approx(sp.spearmanr([1, 2, 3], [3, 1, 2]).statistic)
    with pytest.raises(ValueError, match="at least 3 pairs"):
        spearman([1, 2], [2, 1])


def test_one_sided_comparisons_match_scipy_and_halve_the_smallest_permutation_p():
    """``alternative='greater'``: Welch's one-sided p as scipy's, the exact permutation P(D >= d);
    five perfectly separated seeds a side reach 1/252 one-sided (2/252 two-sided)."""
    import scipy.stats

    from noisemod.analysis.stats import compare

    a, b = [0.30, 0.32, 0.31, 0.35, 0.33], [0.10, 0.12, 0.11, 0.15, 0.13]
    greater, less, both = (compare(a, b, alt) for alt in ("greater", "less", "two-sided"))
    want = scipy.stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue
    assert greater.p_welch == pytest.approx(want, rel=1e-9) and less.p_welch == pytest.approx(1 - want, rel=1e-9)
    assert greater.p_permutation == pytest.approx(1 / 252) and both.p_permutation == pytest.approx(2 / 252)
    assert less.p_permutation == 1.0 and greater.diff == both.diff
    with pytest.raises(ValueError, match="alternative must be one of"):
        compare(a, b, "bigger")


def test_the_ratio_of_means_has_a_log_scale_delta_interval_by_hand():
    r = ratio([2.0, 4.0], [1.0, 1.0, 1.0])
    # log(3 / 1) has variance var(a) / (n_a mean(a)^2) = 2 / (2 * 9) = 1/9 and 1 degree of freedom
    half = sp.t.ppf(0.975, 1) / 3
    assert (r.n_a, r.n_b, r.ratio) == (2, 3, pytest.approx(3.0))
    assert (r.ci_low, r.ci_high) == (pytest.approx(3 * math.exp(-half)), pytest.approx(3 * math.exp(half)))
    assert ratio([2.0, 2.0], [1.0, 1.0]).ci_low == 2.0 and ratio([3.0], [1.0, 2.0]).ci_low is None
    with pytest.raises(ValueError, match="positive"):
        ratio([-1.0, -2.0], [1.0, 2.0])


def test_the_ratio_interval_covers_the_true_ratio_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):  # 5 seeds a side, timings with a 10% spread, true ratio 2
        r = ratio(rng.normal(10.0, 1.0, 5), rng.normal(5.0, 0.5, 5))
        hits += r.ci_low <= 2.0 <= r.ci_high
    assert 0.93 <= hits / 2000 <= 0.97
