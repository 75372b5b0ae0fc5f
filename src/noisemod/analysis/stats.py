"""Statistics over seeds: a condition's mean with its 95% confidence interval, and the comparison
of two conditions (difference, Welch CI and t-test, exact permutation test), Holm-corrected within
one claim; the ratio of two conditions' means (e.g. training times, with a log-scale interval); the
rank correlation of two measures over runs (Spearman, with a Fisher-z interval).
Plain formulas on small samples (scipy for the distributions and ranks); tests check them against
``scipy.stats``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

__all__ = [
    "Comparison",
    "Correlation",
    "Ratio",
    "Summary",
    "compare",
    "holm",
    "permutation_p",
    "ratio",
    "spearman",
    "summarize",
]

LEVEL = 0.95  # confidence level of every interval
EXACT_UP_TO = 10  # the permutation test is exact (every split) when both sides have at most this many values


def _values(values: Sequence[float], what: str) -> list[float]:
    out = [float(v) for v in values]
    if not out or any(not math.isfinite(v) for v in out):
        raise ValueError(f"{what}: expected finite numbers, got {list(values)!r}")
    return out


def _mean(x: list[float]) -> float:
    return sum(x) / len(x)


def _var(x: list[float]) -> float:
    """Sample variance (n - 1); 0 for one value."""
    if len(x) < 2:
        return 0.0
    m = _mean(x)
    return sum((v - m) ** 2 for v in x) / (len(x) - 1)


@dataclass(frozen=True)
class Summary:
    """One condition over seeds: ``n``, mean, sample standard deviation, and the 95% t interval of
    the mean (``ci_low``/``ci_high`` are None with one value: no interval from one seed)."""

    n: int
    mean: float
    std: float
    ci_low: float | None
    ci_high: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(values: Sequence[float]) -> Summary:
    """Mean ± std and the 95% confidence interval (Student t, n - 1 degrees of freedom)."""
    from scipy.stats import t

    x = _values(values, "summarize")
    n, m, s = len(x), _mean(x), math.sqrt(_var(x))
    if n < 2:
        return Summary(n, m, s, None, None)
    half = t.ppf(0.5 + LEVEL / 2, n - 1) * s / math.sqrt(n)
    return Summary(n, m, s, m - half, m + half)


@dataclass(frozen=True)
class Comparison:
    """``a - b`` over seeds: the difference of means, its 95% Welch interval, Welch's two-sided
    t-test p-value, the exact permutation p-value (None when a side has more than
    :data:`EXACT_UP_TO` values), and ``p_holm`` once :func:`holm` has corrected a family."""

    n_a: int
    n_b: int
    diff: float
    ci_low: float | None
    ci_high: float | None
    p_welch: float | None
    p_permutation: float | None
    p_holm: float | None = None

    @property
    def p(self) -> float | None:
        """The p-value a verdict uses: the larger of Welch's and the exact permutation test's (both
        tests must find the difference; with 3 seeds a side the permutation p is never below 0.1)."""
        ps = [p for p in (self.p_welch, self.p_permutation) if p is not None]
        return max(ps) if ps else None

    def to_dict(self) -> dict:
        return {**asdict(self), "p": self.p}


ALTERNATIVES = ("two-sided", "greater", "less")


def _satterthwaite(va: float, vb: float, na: int, nb: int) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of two squared standard errors ``va + vb``
    estimated from ``na`` and ``nb`` values."""
    return (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))


def _welch(
    a: list[float], b: list[float], alternative: str = "two-sided"
) -> tuple[float | None, float | None, float | None]:
    """(CI low, CI high, p) of Welch's t for ``mean(a) - mean(b)``, p two-sided or one-sided
    (``greater``: mean(a) > mean(b)); Nones when it is undefined (a side with one value, or both
    sides without spread)."""
    from scipy.stats import t

    if len(a) < 2 or len(b) < 2:
        return None, None, None
    va, vb = _var(a) / len(a), _var(b) / len(b)
    se2 = va + vb
    diff = _mean(a) - _mean(b)
    if se2 == 0:
        if alternative != "two-sided":
            return diff, diff, (0.0 if (diff > 0) == (alternative == "greater") and diff != 0 else 1.0)
        return diff, diff, (1.0 if diff == 0 else 0.0)
    df = _satterthwaite(va, vb, len(a), len(b))
    se = math.sqrt(se2)
    half = t.ppf(0.5 + LEVEL / 2, df) * se
    if alternative == "greater":
        return diff - half, diff + half, float(t.sf(diff / se, df))
    if alternative == "less":
        return diff - half, diff + half, float(t.cdf(diff / se, df))
    return diff - half, diff + half, float(2 * t.sf(abs(diff) / se, df))


def permutation_p(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided") -> float:
    """Exact permutation p-value of the difference of means, over every way to split the pooled
    values into groups of ``len(a)`` and ``len(b)`` (the observed split among them): two-sided
    ``min(1, 2 min(P(D >= d), P(D <= d)))``, the convention of ``scipy.stats.permutation_test``;
    ``greater``: ``P(D >= d)``; ``less``: ``P(D <= d)``."""
    a, b = _values(a, "a"), _values(b, "b")
    pooled, k = a + b, len(a)
    total, rest = sum(pooled), len(pooled) - k
    observed = _mean(a) - _mean(b)
    tol = 1e-12 * max(1.0, max(abs(v) for v in pooled))
    above = below = count = 0
    for idx in itertools.combinations(range(len(pooled)), k):
        s = sum(pooled[i] for i in idx)
        d = s / k - (total - s) / rest
        above += d >= observed - tol
        below += d <= observed + tol
        count += 1
    if alternative == "greater":
        return above / count
    if alternative == "less":
        return below / count
    return min(1.0, 2 * min(above, below) / count)


def compare(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided") -> Comparison:
    """Condition ``a`` against condition ``b`` (seeds of each): difference, Welch CI and p, and
    the exact permutation p when both have at most :data:`EXACT_UP_TO` values; both p-values
    two-sided, or one-sided for ``alternative`` ``greater`` (a above b) or ``less``."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}")
    a, b = _values(a, "a"), _values(b, "b")
    low, high, p = _welch(a, b, alternative)
    exact = permutation_p(a, b, alternative) if len(a) <= EXACT_UP_TO and len(b) <= EXACT_UP_TO else None
    return Comparison(len(a), len(b), _mean(a) - _mean(b), low, high, p, exact)


def holm(comparisons: Sequence[Comparison]) -> list[Comparison]:
    """Holm's step-down correction of the family's p-values (:attr:`Comparison.p`), in the given
    order: the k-th smallest of m is multiplied by m - k + 1, kept monotone, capped at 1. A
    comparison without a p-value keeps ``p_holm`` None and does not count in m."""
    from dataclasses import replace

    ranked = sorted((c.p, i) for i, c in enumerate(comparisons) if c.p is not None)
    m, running, adjusted = len(ranked), 0.0, {}
    for k, (p, i) in enumerate(ranked):
        running = max(running, min(1.0, (m - k) * p))
        adjusted[i] = running
    return [replace(c, p_holm=adjusted.get(i)) for i, c in enumerate(comparisons)]


@dataclass(frozen=True)
class Ratio:
    """``mean(a) / mean(b)`` over seeds with its 95% interval (None under two values a side)."""

    n_a: int
    n_b: int
    ratio: float
    ci_low: float | None
    ci_high: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def ratio(a: Sequence[float], b: Sequence[float]) -> Ratio:
    """The ratio of two conditions' means (e.g. one method's training time over another's) with a
    95% interval computed on the log scale: the delta method gives ``log(mean(a) / mean(b))`` the
    variance ``var(a) / (n_a mean(a)^2) + var(b) / (n_b mean(b)^2)``, with Welch-Satterthwaite's
    degrees of freedom, and the interval's ends are exponentiated back (so they stay positive and
    the interval is not symmetric). Both means must be positive."""
    from scipy.stats import t

    a, b = _values(a, "a"), _values(b, "b")
    ma, mb = _mean(a), _mean(b)
    if ma <= 0 or mb <= 0:
        raise ValueError(f"ratio: both means must be positive, got {ma!r} and {mb!r}")
    r = ma / mb
    if len(a) < 2 or len(b) < 2:
        return Ratio(len(a), len(b), r, None, None)
    va, vb = _var(a) / (len(a) * ma**2), _var(b) / (len(b) * mb**2)
    se2 = va + vb
    if se2 == 0:
        return Ratio(len(a), len(b), r, r, r)
    df = _satterthwaite(va, vb, len(a), len(b))
    half = t.ppf(0.5 + LEVEL / 2, df) * math.sqrt(se2)
    return Ratio(len(a), len(b), r, r * math.exp(-half), r * math.exp(half))


@dataclass(frozen=True)
class Correlation:
    """Spearman's rank correlation of ``n`` pairs: ``rho``, its 95% interval (Fisher's z with the
    standard error ``sqrt(1.06 / (n - 3))`` of Fieller, Hartley & Pearson 1957; None under 4 pairs)
    and the two-sided p-value of scipy's ``spearmanr`` (t approximation)."""

    n: int
    rho: float
    ci_low: float | None
    ci_high: float | None
    p: float

    def to_dict(self) -> dict:
        return asdict(self)


def spearman(x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Spearman's rho of paired values (ties get average ranks), its 95% interval and p-value."""
    from scipy.stats import norm, spearmanr

    x, y = _values(x, "x"), _values(y, "y")
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"spearman: expected at least 3 pairs of equal length, got {len(x)} and {len(y)}")
    result = spearmanr(x, y)
    rho, p = float(result.statistic), float(result.pvalue)
    if len(x) < 4 or not math.isfinite(rho) or abs(rho) == 1:
        return Correlation(len(x), rho, None, None, p)
    half = norm.ppf(0.5 + LEVEL / 2) * math.sqrt(1.06 / (len(x) - 3))
    z = math.atanh(rho)
    return Correlation(len(x), rho, math.tanh(z - half), math.tanh(z + half), p)
