"""Keep in an image only the cosmicai modules its Lambda handlers can import; delete the rest.

    runtime_modules.py <site dir> <handler module> [<handler module> ...]

The cosmicai wheel is the whole project: the CLI (`cli`, `commands/`), the bench (`perf/`),
training and the survey generator (`data/`) ship in it, and none of them runs in a function.
The image keeps the static import closure of its handlers: every `import` and `from ... import`
of a cosmicai module anywhere in a reached file (inside functions too, so lazily imported
backends stay), and the packages above them. Everything else under <site dir>/cosmicai that is
Python (sources and their compiled .pyc) goes; data files (the model card) stay.
The inference image runs it after the build's `convert-checkpoint` (a CLI command), so the
conversion still has the CLI and the final image does not. Stdlib only: it runs in the builder.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "cosmicai"


class ClosureError(RuntimeError):
    """A handler module, or a cosmicai module a kept file imports, is not in the site dir."""


def module_file(site: Path, name: str) -> Path | None:
    """The source file of module `name` under `site` (a package's __init__.py), or None."""
    base = site.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imported_names(path: Path, name: str) -> set[str]:
    """Every module name `path` (module `name`) may import, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if _is_package(path) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            found.add(base)
            # `from cosmicai import faults` names a submodule, not an attribute.
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def closure(site: Path, roots: list[str]) -> set[str]:
    """The cosmicai modules reachable from `roots` (and every package above each of them)."""
    keep: set[str] = set()
    todo = list(roots)
    for root in roots:
        if module_file(site, root) is None:
            raise ClosureError(f"handler module {root} is not under {site}")
    while todo:
        name = todo.pop()
        if name in keep or not (name == PACKAGE or name.startswith(PACKAGE + ".")):
            continue
        path = module_file(site, name)
        if path is None:
            continue  # `from cosmicai.x import attr`: the attribute's name, not a module
        keep.add(name)
        parent = name.rpartition(".")[0]
        if parent:
            todo.append(parent)
        todo.extend(imported_names(path, name))
    return keep


def removable(site: Path, keep: set[str]) -> list[Path]:
    """Python sources of cosmicai outside `keep`, with their compiled files."""
    doomed: list[Path] = []
    for path in sorted((site / PACKAGE).rglob("*.py")):
        rel = path.relative_to(site).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if ".".join(parts) in keep:
            continue
        doomed.append(path)
        doomed.extend(sorted(path.parent.glob(f"__pycache__/{path.stem}.*.pyc")))
    return doomed


def prune(site: Path, roots: list[str]) -> list[str]:
    """Delete what `roots` never imports; returns the removed modules' names (sorted)."""
    keep = closure(site, roots)
    gone = []
    for path in removable(site, keep):
        path.unlink()
        if path.suffix == ".py":
            gone.append(".".join(path.relative_to(site).with_suffix("").parts))
    # Folders left empty (a whole subpackage such as perf/) go too.
    for folder in sorted((site / PACKAGE).rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return sorted(gone)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: runtime_modules.py <site dir> <handler module> [...]", file=sys.stderr)
        return 2
    site, roots = Path(argv[0]), argv[1:]
    try:
        gone = prune(site, roots)
    except ClosureError as exc:
        print(f"runtime_modules.py: {exc}", file=sys.stderr)
        return 1
    print(f"runtime_modules.py: kept what {', '.join(roots)} import; removed {len(gone)} modules: {' '.join(gone)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
