"""Citations in the code point at documents that exist in the repository.

Docstrings and comments cite a standard's own clause, or a section of ``docs/standards.md`` as
``docs/standards.md#<anchor>`` (the GitHub anchor of one of its headings). This fails when a
file cites an anchor that no heading of that page produces, cites the page without an anchor,
or cites the retired private notes file (``REFERENCE`` followed by a section number), which
users of the repository do not have.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "standards.md"
SCANNED = ("harness", "bench", "tests_unit", "tests_hil")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".txt", ".xml", ".toml", ".cfg", ".ini"}

# The notes file was cited as the word REFERENCE followed by a section sign or a section number
# ("3/6", "7.2 #4"). Spelt with an escape so that this file's own source does not match it.
_RETIRED = re.compile(r"\bREFERENCE\s*[\u00a7\d]")
_CITATION = re.compile(r"docs/standards\.md(#[\w-]*)?")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(markdown: str) -> list[str]:
    """The text of every ATX heading outside fenced code blocks."""
    found: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            found.append(match.group(2))
    return found


def anchors(markdown: str) -> set[str]:
    return {slug(h) for h in headings(markdown)}


def scanned_files() -> list[Path]:
    me = Path(__file__).resolve()
    files = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if (path.is_file() and path.suffix in SUFFIXES and path.resolve() != me
                    and "__pycache__" not in path.parts):
                files.append(path)
    return files


def problems(text: str, known: set[str]) -> list[str]:
    """One message per bad citation in ``text`` (line numbers from 1)."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if _RETIRED.search(line):
            found.append(f"{number}: cites the private notes file: {line.strip()}")
        for match in _CITATION.finditer(line):
            anchor = (match.group(1) or "#")[1:]
            if not anchor:
                found.append(f"{number}: cites docs/standards.md without a #section anchor")
            elif anchor not in known:
                found.append(f"{number}: no heading of docs/standards.md has the anchor "
                             f"#{anchor}")
    return found


@pytest.fixture(scope="module")
def known() -> set[str]:
    return anchors(DOC.read_text(encoding="utf-8"))


def test_headings_of_the_standards_page_have_unique_anchors() -> None:
    slugs = [slug(h) for h in headings(DOC.read_text(encoding="utf-8"))]
    repeated = sorted({s for s in slugs if slugs.count(s) > 1})
    assert not repeated, f"docs/standards.md: headings with the same anchor: {repeated}"


def test_every_citation_names_an_existing_section(known: set[str]) -> None:
    bad = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        bad += [f"{path.relative_to(ROOT)}:{msg}" for msg in problems(text, known)]
    assert not bad, "bad citations:\n" + "\n".join(bad)


def test_links_inside_the_standards_page_resolve(known: set[str]) -> None:
    text = DOC.read_text(encoding="utf-8")
    links = re.findall(r"\]\(#([\w-]+)\)", text)
    assert links, "the page links its own sections"
    missing = sorted(set(links) - known)
    assert not missing, f"docs/standards.md links to missing sections: {missing}"


@pytest.mark.parametrize(("heading", "expected"), [
    ("EMVA 1288 Release 4.0", "emva-1288-release-40"),
    ("EMVA SNR, sensitivity threshold and dynamic range",
     "emva-snr-sensitivity-threshold-and-dynamic-range"),
    ("Konica Minolta CS-100A", "konica-minolta-cs-100a"),
    ("The `viky` producer", "the-viky-producer"),
])
def test_slug_is_githubs_anchor(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_the_checks_catch_what_they_are_for() -> None:
    known = {"emva-linearity-error"}
    retired = "see " + "REFERENCE" + " \u00a78.3"
    assert problems(retired, known)
    assert problems("see " + "REFERENCE" + " 1.7", known)
    assert problems("docs/standards.md#emva-linearity", known)
    assert problems("see docs/standards.md for details", known)
    assert not problems("docs/standards.md#emva-linearity-error", known)
    assert not problems("_REFERENCE = 'text'", known)
