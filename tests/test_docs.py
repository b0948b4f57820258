"""The docs site builds with warnings as errors, and README.md's links reach real pages.

`mkdocs build --strict` fails on a page missing from the nav, a link to a missing page and,
through mkdocs.yml's `validation:` settings, a link to a missing anchor. README.md lives
outside the site, so its links are checked here as GitHub resolves them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: A Markdown link or image target: ``[text](target)``.
LINK = re.compile(r"\]\(([^)\s]+)\)")


def build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of ``root``'s mkdocs.yml, never with ``--quiet``: with it,
    MkDocs 1.6 drops the warnings before strict mode counts them and the build passes."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml")]
        + ["-d", str(site)],
        capture_output=True,
        text=True,
        check=False,
    )


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as
    hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings, outside code blocks."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.MULTILINE | re.DOTALL)
    return {github_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)}


def test_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    result = build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "index.html").is_file()


@pytest.mark.parametrize(
    "link",
    ["[a page](no_such_page.md)", "[a heading](data.md#no-such-heading)"],
    ids=["missing page", "missing anchor"],
)
def test_a_broken_link_fails_the_build(tmp_path: Path, link: str) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy2(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    page = copy / "docs" / "training.md"
    page.write_text(page.read_text() + f"\nSee {link}.\n")
    result = build(copy, tmp_path / "site")
    assert result.returncode == 1
    target = LINK.search(link).group(1)
    assert f"'training.md' contains a link '{target}'" in result.stderr


def test_readme_links_reach_files_and_headings() -> None:
    readme = ROOT / "README.md"
    targets = [t for t in LINK.findall(readme.read_text()) if not re.match(r"\w+://", t)]
    assert targets
    for target in targets:
        path, _, anchor = target.partition("#")
        page = (ROOT / path) if path else readme
        assert page.exists(), f"README.md links to {path}, which does not exist"
        if anchor:
            assert anchor in anchors(page), f"README.md links to {target}: no such heading"


def test_the_first_readme_command_is_the_one_ci_runs() -> None:
    """scripts/checks/check_readme_command.py runs this block; CI runs the tests one."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert blocks[0].strip() == (
        "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && seglab-train"
    )
    test_command = blocks[1].strip()
    assert test_command.endswith('pip install -e ".[dev]" && pytest')
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.replace("pip install -e", "pip install -q -e") in ci
