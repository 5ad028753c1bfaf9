"""The state machine as Terraform renders it, checked by an Amazon States Language validator.

Rendering: `terraform console` in the real root module (terraform/, provider mirror when the
machine has one, a private data dir) evaluates `templatefile(local.asl_path, {...})` with
the stack's three placeholder names and realistic function ARNs: Terraform's own
templatefile on the file the stack uses, not a Python imitation.

Validation: asl-validator, pinned by requirements/asl/package-lock.json and installed by
`make asl-tools` (a prerequisite of `make test`; this module runs it too, so `make test-unit`
works). No npm, node or terraform is a failure with the reason, never a skip.

What asl-validator 4.0.0 does not check (accepted unexamined, so tests/unit/test_asl.py keeps
its own assertions): Retry's JitterStrategy and MaxDelaySeconds, ItemReader.ReaderConfig's
InputType, and whether Parameters strings such as FunctionName are ARNs (an unrendered
`${init_function_arn}` passes). Where it is stricter than AWS: its schema types the Map's
ToleratedFailurePercentage as an integer (AWS's API: a float 0-100), so 10.5 is rejected;
our 10.0 passes because JSON 10.0 is the integer 10 to JavaScript.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TF_DIR = ROOT / "terraform"
PLACEHOLDERS = ("init_function_arn", "infer_function_arn", "summarize_function_arn")
ACCOUNT = "123456789012"
MAP = "Infer all items"

sys.path.insert(0, str(ROOT / "scripts"))

from deploy.terraform_cli import write_mirror_config  # noqa: E402


def function_arn(placeholder: str) -> str:
    """The ARN a deployed stack (default name_prefix, us-east-1) gives that function."""
    return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:cosmicai-{placeholder.split('_')[0]}"


@pytest.fixture(scope="module")
def validator() -> Path:
    """The pinned asl-validator CLI (`make asl-tools`: npm ci from requirements/asl)."""
    tools = Path(os.environ.get("ASL_TOOLS_DIR", ".state/asl-validator"))
    tools = tools if tools.is_absolute() else ROOT / tools
    proc = subprocess.run(
        ["make", "-s", "asl-tools", f"ASL_TOOLS_DIR={tools}"], cwd=ROOT, text=True, capture_output=True, timeout=600
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`make asl-tools` failed (exit {proc.returncode}): the ASL cannot be validated:\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    cli = tools / "node_modules" / ".bin" / "asl-validator"
    version = subprocess.run([str(cli), "--version"], text=True, capture_output=True, timeout=60)
    pinned = json.loads((ROOT / "requirements/asl/package-lock.json").read_text())
    assert version.stdout.strip() == pinned["packages"]["node_modules/asl-validator"]["version"], version
    return cli


def terraform_env(work: Path) -> dict[str, str]:
    """As the Makefile's TF_CHECK_ENV: private data dir, the mirror's CLI config when it exists."""
    env = {**os.environ, "TF_DATA_DIR": str(work / ".terraform"), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    env.pop("TF_CLI_CONFIG_FILE", None)
    mirror = Path(os.environ.get("TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
    if mirror.is_dir():
        write_mirror_config(work / "cli.tfrc", mirror)
        env["TF_CLI_CONFIG_FILE"] = str(work / "cli.tfrc")
    return env


@pytest.fixture(scope="module")
def rendered_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """pipeline.asl.json as the stack's `templatefile(local.asl_path, ...)` renders it."""
    if shutil.which("terraform") is None:
        pytest.fail("terraform not on PATH: the ASL is rendered by Terraform's templatefile (install Terraform >= 1.6)")
    work = tmp_path_factory.mktemp("asl-render")
    env = terraform_env(work)
    init = subprocess.run(
        [
            "terraform",
            f"-chdir={TF_DIR}",
            "init",
            "-input=false",
            "-no-color",
            "-reconfigure",
            f"-backend-config=path={work / 'terraform.tfstate'}",
        ],
        env=env,
        text=True,
        capture_output=True,
        timeout=600,
    )
    assert init.returncode == 0, f"terraform init failed:\n{init.stdout[-2000:]}{init.stderr[-3000:]}"
    values = ", ".join(f'{name} = "{function_arn(name)}"' for name in PLACEHOLDERS)
    expression = f"base64encode(templatefile(local.asl_path, {{ {values} }}))\n"
    console = subprocess.run(
        ["terraform", f"-chdir={TF_DIR}", "console", "-no-color"],
        input=expression,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )
    assert console.returncode == 0, f"terraform console failed:\n{console.stdout[-2000:]}{console.stderr[-3000:]}"
    encoded = console.stdout.strip()
    assert re.fullmatch(r'"[A-Za-z0-9+/=]+"', encoded), f"unexpected console output: {encoded[:500]!r}"
    return base64.b64decode(encoded.strip('"')).decode("utf-8")


def validate(cli: Path, doc: dict[str, Any] | str, where: Path) -> subprocess.CompletedProcess:
    path = where / "definition.asl.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return subprocess.run([str(cli), "--json-path", str(path)], text=True, capture_output=True, timeout=120)


def test_render_uses_the_stacks_placeholders() -> None:
    """The keys rendered here are the keys terraform/main.tf passes to templatefile for the stack."""
    main = (TF_DIR / "main.tf").read_text()
    call = re.search(r"templatefile\(local\.asl_path, \{(.*?)\}\)", main, re.S)
    assert call, "terraform/main.tf no longer renders the ASL with templatefile(local.asl_path, {...})"
    assert tuple(re.findall(r"^\s*(\w+)\s*=", call.group(1), re.M)) == PLACEHOLDERS


def test_terraform_rendered_asl_is_filled_json(rendered_text: str) -> None:
    assert "${" not in rendered_text and "%{" not in rendered_text
    doc = json.loads(rendered_text)
    states = doc["States"]
    assert states["Init"]["Parameters"]["FunctionName"] == function_arn("init_function_arn")
    inner = states[MAP]["ItemProcessor"]["States"]
    assert inner["Infer"]["Parameters"]["FunctionName"] == function_arn("infer_function_arn")
    assert inner["Record failure"]["Parameters"]["FunctionName"] == function_arn("summarize_function_arn")
    assert states["Summarize"]["Parameters"]["FunctionName"] == function_arn("summarize_function_arn")


def test_asl_validator_accepts_the_rendered_definition(validator: Path, rendered_text: str, tmp_path: Path) -> None:
    proc = validate(validator, rendered_text, tmp_path)
    assert proc.returncode == 0, f"asl-validator rejects the rendered ASL:\n{proc.stdout}{proc.stderr}"
    assert "is valid" in proc.stdout, proc.stdout


def _catch_to_missing_state(doc: dict[str, Any]) -> None:
    doc["States"][MAP]["ItemProcessor"]["States"]["Infer"]["Catch"][0]["Next"] = "Record failures"


def _map_without_item_processor(doc: dict[str, Any]) -> None:
    del doc["States"][MAP]["ItemProcessor"]


def _distributed_without_execution_type(doc: dict[str, Any]) -> None:
    del doc["States"][MAP]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"]


def _max_concurrency_path_not_a_path(doc: dict[str, Any]) -> None:
    doc["States"][MAP]["MaxConcurrencyPath"] = "init.max_concurrency"


def _tolerated_failure_over_100(doc: dict[str, Any]) -> None:
    doc["States"][MAP]["ToleratedFailurePercentage"] = 150.0


def _item_reader_without_resource(doc: dict[str, Any]) -> None:
    del doc["States"][MAP]["ItemReader"]["Resource"]


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], tuple[str, ...]]] = {
    "catch-next-to-missing-state": (_catch_to_missing_state, ("MISSING_TRANSITION_TARGET", "Record failures")),
    "map-without-item-processor": (_map_without_item_processor, ("MAP_ITEM_PROCESSOR", MAP)),
    "distributed-without-execution-type": (_distributed_without_execution_type, ("ProcessorConfig",)),
    "max-concurrency-path-not-a-path": (_max_concurrency_path_not_a_path, ("MaxConcurrencyPath",)),
    "tolerated-failure-over-100": (_tolerated_failure_over_100, ("ToleratedFailurePercentage", "<= 100")),
    "item-reader-without-resource": (_item_reader_without_resource, ("ItemReader", "Resource")),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_asl_validator_rejects_a_broken_copy(case: str, validator: Path, rendered_text: str, tmp_path: Path) -> None:
    """The check can fail: each copy breaks one rule of the Distributed Map we rely on."""
    breaks, expected = BROKEN[case]
    doc = copy.deepcopy(json.loads(rendered_text))
    breaks(doc)
    proc = validate(validator, doc, tmp_path)
    message = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"asl-validator did not reject {case} (exit {proc.returncode}):\n{message}"
    assert "is invalid" in message and all(part in message for part in expected), message
