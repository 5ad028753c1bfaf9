"""Security checks (issue 7 item 3): unpickling, code execution, IAM wildcards, public buckets.

Static checks read the source (AST for Python, brace-matched blocks for Terraform) so a
new unsafe call fails here until it is reviewed; behavioural checks feed hostile inputs
(a pickle whose unpickling would write a file, a payload naming a script) to the real code.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmicai.shards import shard_to_bytes
from fanout_s3 import MemoryS3
from tests.conftest import build_shard

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "handlers" / "cosmicai"
TERRAFORM = ROOT / "terraform"


# ------------------------------------------------------------------ python source scan


def _py_files() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10, f"expected the cosmicai package under {PACKAGE}"
    return files


def _dotted(node: ast.AST) -> str:
    """`torch.load` for Attribute(Name(torch), load); '' for anything not a plain dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _calls(tree: ast.AST) -> Iterator[tuple[ast.Call, str, str]]:
    """(call, dotted callee, enclosing function name) for every call in the tree."""

    def walk(node: ast.AST, func: str) -> Iterator[tuple[ast.Call, str, str]]:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Call):
                yield child, _dotted(child.func), func
            yield from walk(child, name)

    yield from walk(tree, "<module>")


def _kw(call: ast.Call, name: str) -> Any:
    """The constant value of keyword `name`, `...` if given but not constant, None if absent."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else ...
    return None


def _where(path: Path, call: ast.Call) -> str:
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return f"{rel}:{call.lineno}"


# Unpickling sites allowed with weights_only=False: only the restricted unpickler
# behind trust_pickle (weights.convert_checkpoint --trust-pickle).
TRUSTED_PICKLE_SITES = {("weights.py", "_load_trusted_pickle")}
_PICKLE_CALLS = {
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "cPickle.load",
    "cPickle.loads",
    "dill.load",
    "dill.loads",
    "joblib.load",
    "marshal.load",
    "marshal.loads",
    "shelve.open",
    "pandas.read_pickle",
    "pd.read_pickle",
}


def unsafe_deserialisation(files: list[Path]) -> list[str]:
    """Every torch.load/pickle-family/np.load/yaml.load call that may run pickled code."""
    found = []
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for call, name, func in _calls(tree):
            site = (path.name, func)
            if name == "torch.load":
                wo = _kw(call, "weights_only")
                if wo is True:
                    continue
                if site in TRUSTED_PICKLE_SITES and _kw(call, "pickle_module") not in (None,):
                    continue  # restricted unpickler; checked separately to be behind trust_pickle
                found.append(f"{_where(path, call)} torch.load without weights_only=True in {func}()")
            elif name in _PICKLE_CALLS:
                found.append(f"{_where(path, call)} {name} in {func}()")
            elif name in ("np.load", "numpy.load") and _kw(call, "allow_pickle") is not False:
                found.append(f"{_where(path, call)} {name} without allow_pickle=False in {func}()")
            elif name == "yaml.load" and _kw(call, "Loader") in (None, ...):
                found.append(f"{_where(path, call)} yaml.load without a safe Loader in {func}()")
    return found


def test_no_unsafe_unpickling_in_the_package() -> None:
    assert unsafe_deserialisation(_py_files()) == []


def test_the_deserialisation_scan_catches_unsafe_calls(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import torch, pickle, numpy as np\n"
        "def a(f):\n    return torch.load(f)\n"
        "def b(f):\n    return torch.load(f, weights_only=False)\n"
        "def c(b):\n    return pickle.loads(b)\n"
        "def d(f):\n    return np.load(f)\n"
        "def ok(f):\n    return torch.load(f, weights_only=True), np.load(f, allow_pickle=False)\n"
    )
    found = unsafe_deserialisation([bad])
    assert [f.split(" in ")[-1] for f in found] == ["a()", "b()", "c()", "d()"]


def test_only_subclassed_unpickler_is_the_restricted_one() -> None:
    # A pickle.Unpickler subclass is safe only if it overrides find_class with a refusal.
    subclasses = []
    for path in _py_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(_dotted(b).endswith("Unpickler") for b in node.bases):
                methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
                subclasses.append((path.name, node.name, "find_class" in methods))
    assert subclasses == [("weights.py", "_RestrictedUnpickler", True)]


def test_trusted_pickle_path_is_only_reached_under_trust_pickle() -> None:
    tree = ast.parse((PACKAGE / "weights.py").read_text())
    guarded, callers = [], 0
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            # Each call of _load_trusted_pickle must sit after an `if not trust_pickle: raise`.
            body_src = ast.unparse(node)
            if "_load_trusted_pickle(" in body_src and node.name != "_load_trusted_pickle":
                callers += 1
                guarded.append(
                    re.search(r"if not trust_pickle:\s*\n\s*raise UntrustedPickleError", body_src) is not None
                )
    assert callers >= 1 and all(guarded), "the restricted unpickler must only run when trust_pickle is set"


class _Boom:
    """Unpickling this runs `Path(marker).touch()`: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _malicious_torch_file(marker: Path) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"images": torch.zeros(1, 5, 32, 32), "evil": _Boom(marker)}, buf)
    return buf.getvalue()


def test_malicious_pickle_shard_is_refused_without_running_code(tmp_path: Path) -> None:
    from cosmicai.shards import ShardError, read_shard

    marker = tmp_path / "pwned"
    with pytest.raises(ShardError, match="part-evil.pt"):
        read_shard(_malicious_torch_file(marker), "part-evil.pt")
    assert not marker.exists(), "reading a shard executed pickled code"


@pytest.mark.parametrize("trust", [False, True], ids=["default", "trust-pickle"])
def test_malicious_checkpoint_never_runs_code(tmp_path: Path, trust: bool) -> None:
    from cosmicai.weights import UnsafePickleError, UntrustedPickleError, convert_checkpoint

    marker = tmp_path / "pwned"
    src = tmp_path / "evil.pth"
    src.write_bytes(_malicious_torch_file(marker))
    # Even --trust-pickle only admits tensors and inert module placeholders.
    expected = UnsafePickleError if trust else UntrustedPickleError
    with pytest.raises(expected, match="evil.pth"):
        convert_checkpoint(src, tmp_path / "out.safetensors", trust_pickle=trust)
    assert not marker.exists(), "checkpoint conversion executed pickled code"
    assert not (tmp_path / "out.safetensors").exists()


# ------------------------------------------------------------------ code execution


_EXEC_CALLS = {
    "eval",
    "exec",
    "compile",
    "__import__",
    "importlib.import_module",
    "runpy.run_path",
    "runpy.run_module",
    "os.system",
    "os.popen",
    "os.execv",
    "os.execvp",
    "os.spawnv",
    "subprocess.run",
    "subprocess.Popen",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
}
# Reviewed sites: (file, function, callee) -> why it cannot run payload-named code.
REVIEWED_EXEC_SITES = {
    ("cli.py", "build_parser", "importlib.import_module"): "names come from the COMMAND_MODULES constant",
    ("weights.py", "find_class", "__import__"): "only (module, name) pairs in the _TORCH_FUNCTIONS allow-list",
    ("bench.py", "_init_probe", "subprocess.run"): "CLI benchmark re-running sys.executable with a constant script",
    (
        "coldstart.py",
        "probe_cold_start",
        "subprocess.run",
    ): "bench cold-start probe: sys.executable with a constant script",
    (
        "bench_system.py",
        "_capped_class",
        "subprocess.run",
    ): "bench's AVX2-capped class: sys.executable -m cosmicai.cli bench-system with the bench's own CLI arguments",
}


def _exec_sites(files: list[Path]) -> list[tuple[str, str, str, str]]:
    sites = []
    for path in files:
        for call, name, func in _calls(ast.parse(path.read_text())):
            if name in _EXEC_CALLS:
                sites.append((path.name, func, name, _where(path, call)))
    return sites


def test_no_unreviewed_code_execution_in_the_package() -> None:
    unreviewed = [s[3] + f" {s[2]} in {s[1]}()" for s in _exec_sites(_py_files()) if s[:3] not in REVIEWED_EXEC_SITES]
    assert unreviewed == []


def _module_file(mod: str) -> Path | None:
    """The source file of an in-package module name, or None (a name imported from a module)."""
    parts = mod.split(".")[1:]
    if not parts:
        return PACKAGE / "__init__.py"
    for cand in (PACKAGE.joinpath(*parts).with_suffix(".py"), PACKAGE.joinpath(*parts, "__init__.py")):
        if cand.exists():
            return cand
    return None


def _import_closure(start: list[str]) -> dict[str, Path]:
    """The cosmicai modules transitively imported (anywhere in the file) by `start`."""
    seen: dict[str, Path] = {}
    todo = list(start)
    while todo:
        mod = todo.pop()
        path = _module_file(mod)
        if mod in seen or path is None:
            continue
        seen[mod] = path
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cosmicai"):
                todo.append(node.module)
                todo.extend(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                todo.extend(a.name for a in node.names if a.name.startswith("cosmicai"))
    return seen


def test_lambda_handlers_reach_no_process_or_dynamic_import_calls() -> None:
    handlers = [f"cosmicai.handlers.{p.stem}" for p in (PACKAGE / "handlers").glob("*.py") if p.stem != "__init__"]
    closure = _import_closure(handlers)
    assert {"cosmicai.handlers.init", "cosmicai.payload", "cosmicai.worker"} <= set(closure)
    sites = {s[:3] for s in _exec_sites(list(closure.values()))}
    # Only the restricted unpickler's allow-listed __import__ may be reachable from a Lambda.
    assert sites <= {("weights.py", "find_class", "__import__")}, sites


def test_init_ignores_script_keys_of_a_payload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference downloaded and exec'd `script`; Init must neither fetch nor run it."""
    from cosmicai.handlers import init

    marker = tmp_path / "pwned"
    s3 = MemoryS3("data-bucket", "out-bucket")
    s3.buckets["data-bucket"]["in/part-00000.safetensors"] = shard_to_bytes(build_shard(4, seed=1))
    evil = f"from pathlib import Path; Path({str(marker)!r}).touch()\n"
    s3.buckets["data-bucket"]["code/evil.py"] = evil.encode()
    s3.buckets["data-bucket"]["in/evil_module.py"] = evil.encode()
    monkeypatch.setattr(init, "s3_client", lambda: s3)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "evil_module.py").write_text(evil)

    ran: list[str] = []
    real_import_module = importlib.import_module

    def watch_import(name: str, *a: Any, **k: Any) -> Any:
        ran.append(f"import_module {name}")
        return real_import_module(name, *a, **k)

    def watch(target: Any, name: str) -> None:
        real = getattr(target, name)

        def recorder(*a: Any, **k: Any) -> Any:  # records, then behaves as usual (dataclasses use exec)
            ran.append(f"{name} {a!r:.300}")
            return real(*a, **k)

        monkeypatch.setattr(target, name, recorder)

    for target, name in (
        (builtins, "exec"),
        (builtins, "eval"),
        (os, "system"),
        (subprocess, "Popen"),
        (subprocess, "run"),
    ):
        watch(target, name)
    monkeypatch.setattr(importlib, "import_module", watch_import)

    result = init.handler(
        {
            "data_bucket": "data-bucket",
            "data_prefix": "in/",
            "bucket": "out-bucket",
            "result_path": "runs/r1",
            "script": "s3://data-bucket/code/evil.py",
            "S3_object_name": "evil_module",
            "object_type": "code/evil.py",
            "run_id": "sec-1",
        },
        None,
    )
    monkeypatch.undo()

    assert result["shards"] == 1
    assert not marker.exists(), "Init executed code named in the payload"
    assert not any("evil" in r for r in ran), ran
    assert not any("evil" in c for c in s3.calls), f"Init fetched payload-named code: {s3.calls}"
    assert "evil_module" not in __import__("sys").modules
    run_doc = json.loads(s3.buckets["out-bucket"]["runs/r1/run.json"])
    for key in ("script", "S3_object_name", "object_type"):
        assert any(f"{key!r} ignored" in w for w in run_doc["warnings"]), (key, run_doc["warnings"])
    assert "evil" not in json.dumps(run_doc["payload"])
    plan = json.loads(s3.buckets["out-bucket"]["runs/r1/plan.json"])
    assert [s["key"] for item in plan for s in item["shards"]] == ["in/part-00000.safetensors"]


# ------------------------------------------------------------------ terraform


def _strip_comments(text: str) -> str:
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':  # keep strings verbatim (they may hold '#' or '//')
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif c == "#" or text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def hcl_blocks(text: str) -> list[str]:
    """Text of every {...} block with its nested blocks blanked out (one level's attributes)."""
    text = _strip_comments(text)
    blocks, stack, in_str = [], [], False
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(text):
        c = text[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "{":
            stack.append(i)
        elif c == "}" and stack:
            start = stack.pop()
            spans.append((start, i))
        i += 1
    for start, end in spans:
        inner = list(text[start + 1 : end])
        for s2, e2 in spans:
            if start < s2 and e2 < end:
                for k in range(s2 - start, e2 - start + 1):
                    if 0 <= k - 1 < len(inner):
                        inner[k - 1] = " "
        blocks.append("".join(inner))
    return blocks


_ATTR = r'(?<![\w."])"?NAME"?\s*=\s*(\[[^\]]*\]|"[^"]*"|[^\n,}]+)'


def _attr_strings(block: str, *names: str) -> list[str] | None:
    for name in names:
        m = re.search(_ATTR.replace("NAME", name), block)
        if m:
            return re.findall(r'"([^"]*)"', m.group(1)) or [m.group(1).strip()]
    return None


def iam_wildcard_findings(files: list[Path]) -> list[str]:
    """Allow statements whose action is a wildcard, or whose wildcard resource allows writes/IAM."""
    findings = []
    for path in files:
        for block in hcl_blocks(path.read_text()):
            actions = _attr_strings(block, "Action", "actions")
            resources = _attr_strings(block, "Resource", "resources") or []
            effect = (_attr_strings(block, "Effect", "effect") or ["Allow"])[0]
            if actions is None or effect != "Allow":
                continue
            wild_actions = [a for a in actions if a == "*" or a.endswith(":*")]
            if wild_actions and "*" in resources:
                findings.append(f"{path.name}: {wild_actions} on *")
            elif wild_actions:
                findings.append(f"{path.name}: wildcard action {wild_actions}")
            elif "*" in resources and any(
                a.split(":")[0] in ("iam", "s3", "lambda", "states", "sts", "ecr") for a in actions
            ):
                findings.append(f"{path.name}: {actions} on resource *")
    return findings


def _tf_files() -> list[Path]:
    files = [p for p in TERRAFORM.rglob("*.tf") if ".terraform" not in p.parts]
    assert files, f"no Terraform under {TERRAFORM}"
    return files


def test_iam_policies_have_no_wildcard_actions_or_writable_star_resources() -> None:
    assert iam_wildcard_findings(_tf_files()) == []


def test_the_iam_scan_finds_statements_and_catches_wildcards(tmp_path: Path) -> None:
    real = [b for p in _tf_files() for b in hcl_blocks(p.read_text()) if _attr_strings(b, "Action", "actions")]
    assert len(real) >= 8, "the scan no longer sees the stack's policy statements"
    bad = tmp_path / "bad.tf"
    bad.write_text(
        "locals {\n  p = jsonencode({ Statement = [\n"
        '    { Effect = "Allow", Action = "*", Resource = "*" },\n'
        '    {\n      Effect   = "Allow"\n      Action   = ["s3:*"]\n      Resource = ["arn:aws:s3:::b/*"]\n    },\n'
        '    {\n      Effect   = "Allow"\n      Action   = ["iam:PassRole"] # a comment {\n'
        '      Resource = ["*"]\n    },\n'
        '    { Effect = "Deny", Action = "*", Resource = "*" },\n'
        "  ] })\n}\n"
        'data "aws_iam_policy_document" "d" {\n  statement {\n    actions   = ["*"]\n    resources = ["*"]\n  }\n}\n'
    )
    # Single-line objects put several attributes on one line; the scan reads the first.
    found = iam_wildcard_findings([bad])
    assert len(found) == 4, found


def test_every_bucket_blocks_public_access() -> None:
    buckets, blocks = {}, {}
    for path in _tf_files():
        text = _strip_comments(path.read_text())
        for m in re.finditer(r'resource\s+"aws_s3_bucket"\s+"(\w+)"', text):
            buckets[(path.parent, m.group(1))] = path
        for m in re.finditer(r'resource\s+"aws_s3_bucket_public_access_block"\s+"(\w+)"\s*\{([^}]*)\}', text):
            body = m.group(2)
            settings = dict(re.findall(r"(\w+)\s*=\s*(\S+)", body))
            target = re.search(r"for_each\s*=\s*aws_s3_bucket\.(\w+)|bucket\s*=\s*aws_s3_bucket\.(\w+)", body)
            assert target, f"{path}: public access block {m.group(1)} is not tied to a bucket resource"
            blocks[(path.parent, target.group(1) or target.group(2))] = settings
        assert not re.search(r'acl\s*=\s*"public-read', text), f"{path}: public ACL"
    assert buckets, "no S3 buckets found in terraform/"
    for key, path in buckets.items():
        settings = blocks.get(key)
        assert settings is not None, f"{path}: bucket {key[1]} has no public access block"
        for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
            assert settings.get(flag) == "true", f"{path}: {flag} is not true for bucket {key[1]}"


def test_bucket_policies_grant_nothing_to_everyone() -> None:
    for path in _tf_files():
        for block in hcl_blocks(path.read_text()):
            principal = _attr_strings(block, "Principal")
            effect = (_attr_strings(block, "Effect") or [""])[0]
            if principal and "*" in principal:
                assert effect == "Deny", f"{path}: a statement allows Principal '*'"
