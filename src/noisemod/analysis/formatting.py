"""How the results wing writes numbers: one formatter per kind of number, so that the report's
tables and the generated parts of the docs show a result, a mean over seeds, a signed difference
or a p-value the same way. Each table keeps its own number of digits (``digits``).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["group_mean_std", "markdown_table", "mean_std", "missing", "number", "p_value", "setting", "signed"]


def missing(v) -> bool:
    """No value: None, or NaN (e.g. the robust accuracy of a run that was not attacked)."""
    return v is None or (isinstance(v, float) and v != v)


def number(v, digits: int = 4) -> str:
    """A result: a float with ``digits`` decimals, '-' when missing, anything else as it is."""
    if missing(v):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def setting(v) -> str:
    """A setting: None is the setting's default, floats in their shortest form (``0.25``, ``1e-05``)."""
    if v is None:
        return "default"
    return f"{v:g}" if isinstance(v, float) else str(v)


def mean_std(mean, std=None, *, digits: int = 4, ci: Sequence | None = None, note: str = "") -> str:
    """A mean over seeds: ``mean ± std [low, high]`` then ``note``; the mean alone without ``std``
    (one run), no interval without ``ci``; '-' when the mean is missing."""
    if missing(mean):
        return "-"
    text = number(mean, digits)
    if std is not None:
        text += f" ± {number(std, digits)}"
    if ci:
        text += f" [{number(ci[0], digits)}, {number(ci[1], digits)}]"
    return text + note


def group_mean_std(agg, metric: str, *, note: str = "") -> str:
    """:func:`mean_std` of one metric of a group of runs aggregated over its seeds
    (:func:`noisemod.analysis.tables.aggregate`: ``<metric>_mean``, ``_std``, ``_ci``): the mean
    alone for one run, whose spread is unknown rather than 0."""
    std = agg[f"{metric}_std"] if agg["n"] > 1 else None
    return mean_std(agg[f"{metric}_mean"], std, ci=agg.get(f"{metric}_ci"), note=note)


def signed(value: float, low: float | None = None, high: float | None = None, *, digits: int = 3) -> str:
    """A signed number (a difference, a correlation) with its sign always written, and its interval
    when there is one (``low`` not None): ``+0.100 [+0.088, +0.112]``."""
    text = f"{value:+.{digits}f}"
    return text + (f" [{low:+.{digits}f}, {high:+.{digits}f}]" if low is not None else "")


def p_value(p: float | None) -> str:
    """A p-value to three significant digits; '-' when there is none (a test that is not defined)."""
    return "-" if p is None else f"{p:.3g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (a ``|`` inside a cell escaped)."""

    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])
