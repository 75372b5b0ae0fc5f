"""The generated parts of the docs, computed from the results archive (``results/``).

A generated part of a Markdown file sits between two comments; what is between them is
replaced, the rest of the file is kept as written::

    <!-- generated: verdicts -->
    ...
    <!-- end generated -->

The kinds (one word, then its arguments):

``verdicts``
    the verdict table of the claims file (:func:`noisemod.claims.verdict_table`)
``bottom-line [ID...]``
    one line per claim (or per claim named): its verdict, and how many of its comparisons agree,
    disagree or are not significant
``table ARCHIVE``
    per condition of ``results/ARCHIVE``: seeds, test accuracy, VII, the VII floor, robust accuracy
    and train time (mean ± std [95% CI]; the report's numbers), and the command that made it
``archive``
    the archive itself: each sweep, its runs, its size, and the total size

``noisemod docs FILE...`` rewrites the generated parts; ``--check`` changes nothing and exits 1
naming each part that is out of date (a test runs it on README.md and docs/RESULTS.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .rundir import SweepDir

__all__ = ["DocError", "Sources", "check", "regenerate", "render"]

BLOCK = re.compile(r"(<!-- generated: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


class DocError(ValueError):
    """A generated part that cannot be made: an unknown kind, or an archive or claim that is not there."""


@dataclass(frozen=True)
class Sources:
    """Where generated parts come from: the archive folder and the claims file."""

    results: Path = Path("results")
    claims: Path = Path("docs/claims.yaml")


def _claims(sources: Sources):
    from .claims import evaluate_claims

    return evaluate_claims(sources.claims, sources.results)


def _verdicts(sources: Sources, args: Sequence[str]) -> str:
    from .claims import verdict_table

    return verdict_table(_claims(sources))


def _bottom_line(sources: Sources, args: Sequence[str]) -> str:
    from .claims import tally

    results = _claims(sources)
    unknown = sorted(set(args) - {r.claim["id"] for r in results})
    if unknown:
        raise DocError(f"'bottom-line' names claims not in {sources.claims}: {', '.join(unknown)}")
    lines = []
    for r in (r for r in results if not args or r.claim["id"] in args):
        agree, disagree = tally([c["comparison"] for c in r.comparisons], r.claim["direction"])
        rest = len(r.comparisons) - agree - disagree
        lines.append(
            f"- {r.claim['title']}: **{r.verdict}** ({agree} of {len(r.comparisons)} comparisons agree, "
            f"{disagree} disagree, {rest} not significant; `results/{r.claim['archive']}`)"
        )
    return "\n".join(lines)


def _table(sources: Sources, args: Sequence[str]) -> str:
    from .report import report_sections

    if len(args) != 1:
        raise DocError(f"'table' takes one archive name, got {' '.join(args) or 'none'}")
    folder = sources.results / args[0]
    if not (folder / "results.csv").is_file():
        raise DocError(f"no archived sweep {folder} (results.csv missing)")
    s = report_sections(folder)
    header, rows = s["results"]
    vii_floor = _floors(s)
    if vii_floor:
        header = [*header, "VII floor (fresh model)"]
        rows = [[*row, vii_floor.get(tuple(row[:2]), "-")] for row in rows]
    command = SweepDir(folder).read_sweep().get("command")  # as the sweep was run (not the archive's path)
    table = _markdown_table(header, rows)
    return f"`{command}`\n\n{table}" if command else table


def _floors(sections: dict) -> dict:
    """(dataset, model) -> the gradient's VII floor, mean over the conditions' seeds, when scored."""
    header, rows = sections["interpretability"]
    if not rows or "vii ↑" not in header:
        return {}
    at = header.index("vii ↑")
    out = {}
    for row in rows:
        if row[3] == "gradient" and "[" in row[at]:
            out.setdefault((row[0], row[1]), row[at].rsplit("[", 1)[1].rstrip("]"))
    return out


def _archive(sources: Sources, args: Sequence[str]) -> str:
    rows, total = [], 0
    for folder in sorted(p for p in sources.results.iterdir() if (p / "results.csv").is_file()):
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        total += size
        runs = sum(1 for p in (folder / "runs").iterdir() if p.is_dir()) if (folder / "runs").is_dir() else 0
        rows.append([f"`results/{folder.name}`", str(runs), f"{size / 1e6:.2f} MB"])
    rows.append(["all", str(sum(int(r[1]) for r in rows)), f"{total / 1e6:.2f} MB"])
    return _markdown_table(["archive", "runs", "size"], rows)


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


KINDS: dict[str, Callable[[Sources, Sequence[str]], str]] = {
    "verdicts": _verdicts,
    "bottom-line": _bottom_line,
    "table": _table,
    "archive": _archive,
}


def render(spec: str, sources: Sources) -> str:
    """The text of one generated part, from its spec (``table cost-cpu-seeds``)."""
    kind, *args = spec.split()
    if kind not in KINDS:
        raise DocError(f"unknown generated part {kind!r}; kinds: {', '.join(KINDS)}")
    return KINDS[kind](sources, args).rstrip("\n") + "\n"


def regenerate(text: str, sources: Sources) -> tuple[str, list[str]]:
    """The text with every generated part rewritten, and the specs of the parts that changed."""
    changed = []

    def fill(m: re.Match) -> str:
        body = render(m["spec"], sources)
        if body != m["body"]:
            changed.append(m["spec"])
        return m.group(1) + body + m.group(4)

    return BLOCK.sub(fill, text), changed


def check(paths: Sequence[Path], sources: Sources, *, write: bool) -> dict[Path, list[str]]:
    """Per file, the generated parts out of date; with ``write``, the files rewritten (atomically)."""
    from .io import atomic_write

    stale = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise DocError(f"no such file: {path}")
        new, changed = regenerate(path.read_text(encoding="utf-8"), sources)
        if changed:
            stale[path] = changed
            if write:
                atomic_write(path, lambda f, new=new: f.write(new), "w")
    return stale
