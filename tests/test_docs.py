"""The documentation is self-contained and builds: links, outside references, the Sphinx API reference.

* every relative link in ``README.md`` and ``docs/*.md`` points to an existing file, and
  ``docs/README.md`` links every page in ``docs/``;
* no tracked file points outside the repository (the specification lives in ``docs/theory.md``
  and ``docs/bridge.md``);
* the API reference (``docs/api``) builds with Sphinx without errors and without a module that
  autodoc fails to import (warnings are printed, not fatal: see ``docs/README.md``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"

# ---------------------------------------------------------------------------------------------
# links
# ---------------------------------------------------------------------------------------------
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def relative_links(text: str) -> list[str]:
    """Targets of the Markdown links of ``text`` that point into the repository (fragments removed).

    Links inside fenced code blocks and code spans are not links. External links (with a URL
    scheme) and in-page anchors (``#...``) are skipped.
    """
    text = _CODE_SPAN.sub("", _FENCE.sub("", text))
    targets = _INLINE_LINK.findall(text) + _REFERENCE_LINK.findall(text)
    out = []
    for target in targets:
        if _EXTERNAL.match(target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        if path:
            out.append(path)
    return out


def broken_links(md_file: Path) -> list[str]:
    """The relative links of ``md_file`` whose target does not exist."""
    text = md_file.read_text(encoding="utf-8")
    return [t for t in relative_links(text) if not (md_file.parent / t).exists()]


def _markdown_pages() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def test_link_parser_finds_links_and_skips_code_and_urls():
    text = (
        "See [theory](docs/theory.md#1-data) and ![fig](img/a.png), [web](https://example.org/x.md),\n"
        "[top](#quick-start), `[not](a_link.md)`.\n\n```\n[nor](this.md)\n```\n[ref]: docs/ref.md\n"
    )
    assert relative_links(text) == ["docs/theory.md", "img/a.png", "docs/ref.md"]


@pytest.mark.parametrize("page", _markdown_pages(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_point_to_existing_files(page: Path):
    assert page.is_file(), f"{page.relative_to(REPO_ROOT)} is missing"
    missing = broken_links(page)
    assert not missing, f"{page.relative_to(REPO_ROOT)} links to missing files: {missing}"


def test_docs_index_lists_every_page():
    index = DOCS / "README.md"
    linked = {(index.parent / t).resolve() for t in relative_links(index.read_text(encoding="utf-8"))}
    pages = [p for p in sorted(DOCS.glob("*.md")) if p.name != "README.md"]
    unlisted = [p.name for p in pages if p.resolve() not in linked]
    assert not unlisted, f"docs/README.md does not link {unlisted}"
    assert (DOCS / "api" / "index.rst").resolve() in linked, "docs/README.md does not link the API reference"


def test_theory_keeps_the_section_numbering():
    # code and docs cite "docs/theory.md §k": the numbering §1-§9 is fixed
    headings = re.findall(r"^## (\d+)\. ", (DOCS / "theory.md").read_text(encoding="utf-8"), re.M)
    assert headings == [str(k) for k in range(1, 10)]


# ---------------------------------------------------------------------------------------------
# nothing points outside the repository
# ---------------------------------------------------------------------------------------------
# written in pieces so that this file does not match itself: the old outside specification (by
# folder or by file name; the docs' own pages are lower case) and the machine's working folder
OUTSIDE_REFERENCES = (
    "shared" + "/THEORY",
    "shared" + "/BRIDGE",
    ".." + "/shared",
    "THEORY" + ".md",
    "BRIDGE" + ".md",
    "/" + "work/",
)


def outside_references(text: str) -> list[str]:
    """The forbidden references that occur in ``text``."""
    return [pattern for pattern in OUTSIDE_REFERENCES if pattern in text]


def _tracked_files() -> list[Path]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, timeout=60)
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    names = [n for n in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    return [REPO_ROOT / n for n in names]


def test_outside_reference_patterns():
    assert outside_references("see " + "shared" + "/THEORY" + ".md §2") == ["shared" + "/THEORY", "THEORY" + ".md"]
    assert outside_references("../" + "shared" + "/notes") == [".." + "/shared"]
    assert outside_references("as in " + "BRIDGE" + ".md §1") == ["BRIDGE" + ".md"]
    assert outside_references("python " + "/" + "work/x.py") == ["/" + "work/"]
    assert outside_references("docs/theory.md §2, docs/bridge.md §1, Problem.work/2") == []


def test_no_tracked_file_points_outside_the_repository():
    offenders = []
    for path in _tracked_files():
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        text = path.read_bytes().decode("utf-8", "ignore")
        found = outside_references(text)
        if found:
            offenders.append(f"{path.relative_to(REPO_ROOT)}: {', '.join(found)}")
    assert not offenders, "files that point outside the repository (use docs/theory.md or docs/bridge.md):\n" + "\n".join(offenders)


# ---------------------------------------------------------------------------------------------
# the Sphinx API reference
# ---------------------------------------------------------------------------------------------
_FATAL = re.compile(r"\b(ERROR|SEVERE|CRITICAL)\b|failed to import|could not import|Extension error|Exception occurred")
SPHINX_TIMEOUT_S = 600


def build_api_reference(source: Path, out: Path) -> tuple[int, str]:
    """Build the HTML reference from ``source`` (a copy of docs/api) into ``out``; (exit status, log)."""
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", str(source), str(out / "html"), "-d", str(out / "doctrees")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=SPHINX_TIMEOUT_S,
    )
    return proc.returncode, proc.stdout + proc.stderr


def fatal_lines(log: str) -> list[str]:
    """Lines of a Sphinx log that fail the build: errors and import failures."""
    return [line for line in log.splitlines() if _FATAL.search(line)]


def test_fatal_line_filter():
    log = (
        "x.py:docstring of m.f:3: WARNING: Field list ends without a blank line\n"
        "x.py:docstring of m.g:6: ERROR: Malformed table.\n"
        "WARNING: autodoc: failed to import module 'gone' from module 'opmerge'; the following exception was raised:\n"
    )
    assert fatal_lines(log) == log.splitlines()[1:]


@pytest.mark.slow
def test_api_reference_builds(tmp_path: Path):
    pytest.importorskip("sphinx", reason="the docs extra is not installed (pip install -e '.[docs]')")
    source = tmp_path / "api"
    # a copy, so that the pages generated at build time never land in the checkout
    shutil.copytree(DOCS / "api", source, ignore=shutil.ignore_patterns("generated", "_build"))
    status, log = build_api_reference(source, tmp_path / "build")
    if log.strip():
        print(log)
    fatal = fatal_lines(log)
    assert status == 0 and not fatal, f"sphinx exit status {status}; errors:\n" + "\n".join(fatal)
    html = tmp_path / "build" / "html"
    assert (html / "index.html").is_file()
    # the whole package tree is there: the core, the subpackages mapped from other folders, and modules
    for module in ("opmerge", "opmerge.analysis", "opmerge.experiments", "opmerge.teacher", "opmerge.model"):
        assert (html / "generated" / f"{module}.html").is_file(), f"no page for {module}"


# ---------------------------------------------------------------------------------------------
# license and citation
# ---------------------------------------------------------------------------------------------
def _top_level_keys(cff_text: str) -> dict[str, str]:
    """Top-level ``key: value`` pairs of a CFF (YAML) file, quotes removed (enough for these checks)."""
    out = {}
    for match in re.finditer(r"^([a-z][a-z-]*):\s*(.*?)\s*$", cff_text, re.M):
        out[match.group(1)] = match.group(2).strip("\"'")
    return out


def test_license_and_citation_agree_with_the_package():
    from importlib.metadata import version

    license_text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License") and "the opmerge developers" in license_text
    keys = _top_level_keys((REPO_ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    for required in ("cff-version", "message", "title", "authors", "version", "license", "references"):
        assert required in keys, f"CITATION.cff lacks {required}"
    assert keys["cff-version"] == "1.2.0"
    assert keys["license"] == "MIT"
    assert keys["version"] == version("opmerge"), "CITATION.cff's version is not the package's"
    assert "2505.16024" in (REPO_ROOT / "CITATION.cff").read_text(encoding="utf-8")
