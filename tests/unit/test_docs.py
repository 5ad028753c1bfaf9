"""The docs stay true: README.md is short, every relative link in README.md, docs/ and the
Terraform READMEs resolves (file and heading), every repository path they name in a code span
exists, the README's Layout table names each folder's subfolders, and the Terraform Inputs and
Outputs tables equal what scripts/docs/tf_tables.py generates from the .tf files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from docs import tf_tables  # noqa: E402

README_LIMIT_BYTES = 12 * 1024

DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "terraform").glob("modules/*/README.md")),
    ROOT / "terraform/examples/README.md",
    *sorted((ROOT / "terraform").glob("examples/*/README.md")),
]

# A code span naming a file or folder of this repository (from its top-level folders), e.g.
# `tests/unit/test_docs.py` or `tests/integration/test_images.py::test_x`.
_TOP = "handlers|scripts|tests|terraform|docs|images|statemachine|bench|requirements|mk"
REPO_PATH = re.compile(rf"^(?:{_TOP})/[\w./-]*$")


def _prose(markdown: str) -> str:
    """The Markdown without fenced code blocks (their contents are examples, not links)."""
    return re.sub(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", "", markdown, flags=re.S | re.M)


def _without_code_spans(text: str) -> str:
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text)


def links(markdown: str) -> list[str]:
    """Targets of inline links and images, `[text](target "title")`, and reference definitions."""
    text = _without_code_spans(_prose(markdown))
    found = re.findall(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", text)
    found += re.findall(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", text, flags=re.M)
    return found


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: inline markup dropped, lower case, punctuation other
    than '-' and '_' removed, spaces as '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every anchor a Markdown file offers: its headings (duplicates numbered as GitHub does)
    and explicit `<a name=...>`/`id=` anchors."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in re.findall(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", _prose(markdown), flags=re.M):
        slug = github_slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    out |= set(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", markdown))
    return out


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_readme_is_at_most_12_kb() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT_BYTES, (
        f"README.md is {size:,} bytes (limit {README_LIMIT_BYTES:,}): move reference material to docs/"
    )


def test_every_terraform_module_has_a_readme() -> None:
    modules = sorted(p.parent for p in (ROOT / "terraform/modules").glob("*/variables.tf"))
    assert len(modules) >= 5
    missing = [_rel(m) for m in modules if not (m / "README.md").is_file()]
    assert not missing, f"modules without a README.md: {missing}"
    documented = set(tf_tables.documented_modules().values())
    assert set(modules) <= documented and ROOT / "terraform" in documented


def test_examples_have_a_readme_and_a_main_tf() -> None:
    examples = sorted(p for p in (ROOT / "terraform/examples").iterdir() if p.is_dir())
    assert {"complete", "local"} <= {p.name for p in examples}
    for example in examples:
        assert (example / "main.tf").is_file() and (example / "README.md").is_file(), _rel(example)
        assert 'source = "../..' in (example / "main.tf").read_text(), (
            f"{_rel(example)} calls this repository's modules"
        )


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_relative_links_resolve(doc: Path) -> None:
    text = doc.read_text()
    broken = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.exists():
            broken.append(f"{target} (no file {path_part})")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text()):
            broken.append(f"{target} (no heading #{anchor} in {_rel(path)})")
    assert not broken, f"{_rel(doc)}: broken links: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_repository_paths_in_code_spans_exist(doc: Path) -> None:
    missing = []
    for span in re.findall(r"`([^`\n]+)`", _prose(doc.read_text())):
        path = span.strip().split("::", 1)[0]
        if REPO_PATH.match(path) and not (ROOT / path.rstrip("/")).exists():
            missing.append(path)
    assert not missing, f"{_rel(doc)} names paths that do not exist: {missing}"


def _tracked_subfolders(folder: Path) -> set[str]:
    """The subfolders of a repository folder that hold files git tracks or would track (not
    ignored), else, outside a git checkout, every subfolder but caches."""
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", "--", _rel(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0 and proc.stdout.strip():
        return {
            Path(line).relative_to(_rel(folder)).parts[0]
            for line in proc.stdout.splitlines()
            if len(Path(line).relative_to(_rel(folder)).parts) > 1
        }
    return {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}


def _layout_rows() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([^`]+)` \| (.+) \|$", section, flags=re.M))


def test_readme_layout_names_existing_folders_and_all_their_subfolders() -> None:
    rows = _layout_rows()
    assert len(rows) >= 8, "README.md's Layout table was not found"
    problems = []
    for path, what in rows.items():
        folder = ROOT / path.rstrip("/")
        if not folder.exists():
            problems.append(f"{path} does not exist")
            continue
        named = {s.rstrip("/") for s in re.findall(r"`([\w.-]+/)`", what)}
        if not named:
            continue  # the row describes the folder without listing subfolders
        actual = _tracked_subfolders(folder)
        if named != actual:
            problems.append(f"{path}: names {sorted(named)}, holds {sorted(actual)}")
    assert not problems, f"README.md Layout table: {problems}"


def test_terraform_tables_match_the_tf_files() -> None:
    problems = tf_tables.stale()
    assert not problems, f"{problems}: run .venv/bin/python scripts/docs/tf_tables.py --write"


def test_link_and_anchor_helpers() -> None:
    text = (
        "# Deploy: Terraform, images, AWS\n## Deploy: Terraform, images, AWS\n"
        "### Variables (`terraform/variables.tf`)\n"
        'See [a](docs/a.md#x), ![img](p.png "t"), `[not](a link)`.\n```\n[no](fenced.md)\n```\n'
        "[ref]: other.md\n"
    )
    assert links(text) == ["docs/a.md#x", "p.png", "other.md"]
    assert anchors(text) == {
        "deploy-terraform-images-aws",
        "deploy-terraform-images-aws-1",
        "variables-terraformvariablestf",
    }
