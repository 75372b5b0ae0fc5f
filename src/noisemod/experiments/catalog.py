"""The experiment specs that come with the package (``noisemod/experiments/specs/*.yaml``, package
data of the wheel): the paper's experiments as data, found by name.

``noisemod sweep protocol`` runs the bundled ``protocol`` spec; a path to a spec file runs that
file. :func:`resolve_spec` decides which: a file that exists wins (when its name is also a bundled
spec's, a note says so), then a bundled spec by name, then a path as the specs were named before
they came with the package (``experiments/NAME.yaml``, as older sweep.json files record it);
anything else is an error listing the bundled specs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

__all__ = ["SPECS", "SpecNotFound", "bundled_specs", "listing", "resolve_spec"]

#: the folder of the bundled specs
SPECS = Path(__file__).with_name("specs")
#: where the specs were before they came with the package (a path there still names a bundled spec)
OLD_FOLDER = "experiments"
FIRST_SENTENCE = re.compile(r"(.*?[.?!])(?:\s|$)")


class SpecNotFound(FileNotFoundError):
    """Neither a spec file nor the name of a bundled spec (the message lists them)."""


def bundled_specs() -> dict[str, Path]:
    """Name -> file of every bundled spec, by name."""
    return {p.stem: p for p in sorted(SPECS.glob("*.yaml"), key=lambda p: p.stem)}


def listing() -> str:
    """One line per bundled spec: its name and the first line of its description, up to the end of
    its first sentence (the descriptions are paragraphs folded into one line)."""
    from .spec import load_spec

    specs = bundled_specs()
    width = max(map(len, specs))
    lines = []
    for name, path in specs.items():
        first = (load_spec(path).description.strip().splitlines() or [""])[0]
        sentence = re.match(FIRST_SENTENCE, first)
        lines.append(f"{name:<{width}}  {sentence.group(1) if sentence else first}")
    return "\n".join(lines)


def resolve_spec(spec, note: Callable[[str], None] = lambda _: None) -> Path:
    """The spec file that ``spec`` (a path, or a bundled spec's name) means; ``note`` is told once
    when that choice could surprise (a file that shadows a bundled name, an old path)."""
    path, specs = Path(spec), bundled_specs()
    if path.is_file():
        if str(spec) in specs:
            note(f"{spec}: the file {path.resolve()}, not the bundled spec of that name")
        return path
    if str(spec) in specs:
        return specs[str(spec)]
    old = path.parent == Path(OLD_FOLDER) and path.suffix == ".yaml" and path.stem in specs
    if old:
        note(f"{spec}: the bundled spec {path.stem} (the specs come with the package now)")
        return specs[path.stem]
    raise SpecNotFound(f"no such file, and no bundled spec of that name; the bundled specs: {', '.join(specs)}")
