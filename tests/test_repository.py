"""The repository speaks of the project alone: no tracker numbers and no account of how the work
was organized, in any tracked text file (code, docs, specs, archived results)."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: words that point outside the project: a tracker's numbers, a work plan's steps, who worked when
OUTSIDE = re.compile(
    r"\bissues? #?\d+"
    r"|\bstops? #?\d+\b"
    r"|\bthis\ssession\b"
    r"|\b(?:later|last|earlier|previous|next|CPU) sessions?\b"
    r"|\bsessions?'s? machines?\b",
    re.IGNORECASE,
)


def tracked_text_files(root: Path = REPO) -> list[Path]:
    """Every file git tracks that is text (a file with a NUL byte, or not UTF-8, is binary)."""
    names = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    out = []
    for name in filter(None, names.decode().split("\0")):
        path = root / name
        if not path.is_file():  # deleted in the work tree, not yet in the index
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.append(path)
    return out


def outside_words(text: str) -> list[tuple[int, str]]:
    """``(line number, the words)`` of each mention of a tracker number or of how work was organized."""
    return [(text.count("\n", 0, m.start()) + 1, m.group()) for m in OUTSIDE.finditer(text)]


# "~" stands for the space inside each flagged phrase, so that this file does not flag itself
@pytest.mark.parametrize(
    "text, found",
    [
        ("the must-show table of issue~23", ["issue~23"]),
        ("(Issue~#24)", ["Issue~#24"]),
        ("the CI run of stop~26 stalled", ["stop~26"]),
        ("Not run this~session: the CPU", ["this~session"]),
        ("in a later~session; earlier~sessions", ["later~session", "earlier~sessions"]),
        ("the sessions'~machines differed", ["sessions'~machines"]),
        ("once per test session; early stopping at epoch 3; scope='session'", []),
    ],
)
def test_the_words_that_point_outside_the_project(text, found):
    assert [w for _, w in outside_words(text.replace("~", " "))] == [f.replace("~", " ") for f in found]


def test_no_tracked_text_file_speaks_of_issue_numbers_or_how_the_work_was_organized():
    files = tracked_text_files()
    assert any(p.name == "README.md" for p in files) and any(p.suffix == ".csv" for p in files)
    hits = [
        f"{p.relative_to(REPO)}:{line}: {words!r}"
        for p in files
        for line, words in outside_words(p.read_text(encoding="utf-8"))
    ]
    assert not hits, "words that speak of something other than the project:\n" + "\n".join(hits)


#: a markdown link or image: [text](target), the target without a scheme (a relative path, maybe #anchor)
LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:)([^)\s]+)\)")


def anchors(markdown: str) -> set[str]:
    """The anchors a markdown page's headings get on GitHub: lowercased, punctuation dropped but
    '-' and '_', spaces made '-'."""
    out = set()
    for heading in re.findall(r"^#+\s+(.*?)\s*$", markdown, flags=re.MULTILINE):
        text = re.sub(r"[`*]|\[([^]]*)\]\([^)]*\)", r"\1", heading).lower()
        out.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return out


def test_the_anchors_of_headings_follow_githubs_rule():
    page = "# Results: what we measured\n## The metrics' validation\n### `noisemod docs` and [CI](x.md)\n"
    assert anchors(page) == {"results-what-we-measured", "the-metrics-validation", "noisemod-docs-and-ci"}


def test_every_relative_link_in_the_docs_reaches_a_file_and_its_heading():
    broken = []
    for page in (p for p in tracked_text_files() if p.suffix == ".md"):
        text = page.read_text(encoding="utf-8")
        for target in LINK.findall(text):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "links that lead nowhere:\n" + "\n".join(broken)
