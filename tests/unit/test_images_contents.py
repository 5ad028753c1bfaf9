"""What a Lambda image's Python carries: only the cosmicai modules its handlers can import
(images/runtime_modules.py), and no CLI-only dependency (rich is the `cli` extra)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "images"))

import runtime_modules  # noqa: E402

HANDLERS = ROOT / "handlers"
# The handlers each image keeps (as the Dockerfiles name them).
IMAGE_HANDLERS = {
    "inference": ["cosmicai.handlers.infer"],
    "orchestration": ["cosmicai.handlers.init", "cosmicai.handlers.summarize"],
}
# CLI-only code that no function runs: the CLI, the bench, training and the data generator.
CLI_ONLY = [
    "cosmicai.cli",
    "cosmicai.commands",
    "cosmicai.commands.bench",
    "cosmicai.commands.train",
    "cosmicai.perf",
    "cosmicai.perf.projection",
    "cosmicai.data.train",
    "cosmicai.data.generate",
    "cosmicai.report",
]
# Modules that block `import rich` in a child interpreter, as if the `cli` extra were absent.
NO_RICH = (
    "import sys, importlib.abc\n"
    "class NoRich(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'rich' or name.startswith('rich.'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, NoRich())\n"
)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("image", sorted(IMAGE_HANDLERS))
def test_the_closure_holds_what_the_handlers_import_and_no_cli_code(image: str) -> None:
    keep = runtime_modules.closure(HANDLERS, IMAGE_HANDLERS[image])
    assert not keep & set(CLI_ONLY), sorted(keep & set(CLI_ONLY))
    # What importing the handlers really loads must survive the pruning.
    probe = _python(
        f"import sys, {', '.join(IMAGE_HANDLERS[image])}\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('cosmicai'))))"
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert set(probe.stdout.split()) <= keep, sorted(set(probe.stdout.split()) - keep)


def test_prune_deletes_unreached_modules_and_their_bytecode(tmp_path: Path) -> None:
    pkg = tmp_path / "cosmicai"
    files = {
        "__init__.py": "",
        "handlers/__init__.py": "",
        "handlers/infer.py": "from cosmicai import engine\nfrom ..worker import run_item\n",
        "engine.py": "def lazy():\n    from cosmicai.backends import ov  # reached only when called: kept\n",
        "backends/__init__.py": "",
        "backends/ov.py": "",
        "worker.py": "run_item = 1\n",
        "cli.py": "import cosmicai.commands.bench\n",
        "commands/__init__.py": "",
        "commands/bench.py": "",
        "perf/__init__.py": "",
        "perf/report.py": "",
        "assets/MODEL_CARD.json": "{}",
        "__pycache__/cli.cpython-311.pyc": "",
        "__pycache__/engine.cpython-311.pyc": "",
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    gone = runtime_modules.prune(tmp_path, ["cosmicai.handlers.infer"])
    assert gone == [
        "cosmicai.cli",
        "cosmicai.commands.__init__",
        "cosmicai.commands.bench",
        "cosmicai.perf.__init__",
        "cosmicai.perf.report",
    ]
    left = {str(p.relative_to(pkg)) for p in pkg.rglob("*") if p.is_file()}
    assert left == {
        "__init__.py",
        "handlers/__init__.py",
        "handlers/infer.py",
        "engine.py",
        "backends/__init__.py",
        "backends/ov.py",
        "worker.py",
        "assets/MODEL_CARD.json",
        "__pycache__/engine.cpython-311.pyc",
    }
    assert not (pkg / "perf").exists() and not (pkg / "commands").exists()
    with pytest.raises(runtime_modules.ClosureError, match="cosmicai.handlers.missing"):
        runtime_modules.prune(tmp_path, ["cosmicai.handlers.missing"])


def test_both_dockerfiles_prune_to_their_handlers() -> None:
    for image, handlers in IMAGE_HANDLERS.items():
        dockerfile = (ROOT / f"images/{image}.Dockerfile").read_text()
        assert f"runtime_modules.py /opt/cosmicai/site {' '.join(handlers)}" in dockerfile, image
    inference = (ROOT / "images/inference.Dockerfile").read_text()
    # After the build's conversion (a CLI command), before the smoke import that checks the rest.
    assert (
        inference.index("convert-checkpoint")
        < inference.index("runtime_modules.py /opt")
        < inference.index("import sys, cosmicai.handlers.infer")
    )


def test_rich_is_the_cli_extra_not_a_base_dependency() -> None:
    project = tomllib.loads((HANDLERS / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("rich") for dep in project["dependencies"])
    assert project["optional-dependencies"]["cli"] == ["rich>=13"]
    assert "handlers[cli," in (ROOT / "Makefile").read_text()  # make setup installs it


def test_the_library_and_handlers_import_without_rich() -> None:
    modules = sorted(
        ".".join(p.relative_to(HANDLERS).with_suffix("").parts).removesuffix(".__init__")
        for p in (HANDLERS / "cosmicai").rglob("*.py")
    )
    probe = _python(NO_RICH + f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\nprint('ok')")
    assert probe.returncode == 0 and probe.stdout.split() == ["ok"], probe.stderr[-3000:]


def test_a_drawing_command_without_rich_names_the_extra(tmp_path: Path) -> None:
    probe = _python(
        NO_RICH + f"from cosmicai.cli import main\nsys.exit(main(['prepare', '{tmp_path}', '--out', '{tmp_path}/out']))"
    )
    assert probe.returncode == 2, probe.stderr[-3000:]
    assert "cosmicai prepare: needs rich, from the `cli` extra: pip install 'cosmicai[cli]'" in probe.stderr
