"""Container images: build both (reused when their content-digest tag exists), check size
budgets, user and contents (no CLI code), and run Init, Infer and Summarize once, each in its image,
through the local cloud's docker executor mode, declared as Terraform declares them (package type
Image); the docker-mode sandbox on its own (a real image's function error, a timeout, no container
left); a crash, a timeout and a kernel OOM kill of a worker in the real inference image; the arm64
pins (no engine needed).

Skipped only when no Docker engine can be started (dockerd missing and not installable).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
from botocore.config import Config

from itfixtures.iam import scoped_role

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "scripts/docker/engine.sh"
MANIFEST = ROOT / "build/images.json"
LS_PYTHON = ROOT / ".venv-localstack/bin/python"
# Not the session LocalStack's port: this one runs the docker executor mode.
# its own default port: test_localstack_launcher.py's LocalStack is on 4598 (COSMICAI_TEST_LAUNCHER_PORT)
DOCKER_LS_PORT = int(os.environ.get("COSMICAI_IMAGES_TEST_PORT", "4597"))
REGISTRY = "000000000000.dkr.ecr.us-east-1.localhost.localstack.cloud:4566"
ROLE = "arn:aws:iam::000000000000:role/cosmicai-images-test"
BUILD_TIMEOUT_S = 720  # a first build on 2 cores: base, wheels, both images

pytestmark = pytest.mark.timeout(900)  # the first test also waits for the build


@pytest.fixture(scope="module")
def docker_env() -> Iterator[dict[str, str]]:
    """Environment reaching a running engine (ours under .state/docker, or the user's); one this
    fixture started is stopped at the end (images stay under .state/docker for the next run)."""
    was_up = subprocess.run([str(ENGINE), "status"], cwd=ROOT, capture_output=True, timeout=60).returncode == 0
    proc = subprocess.run([str(ENGINE), "up"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if proc.returncode == 2:
        pytest.skip(f"no Docker engine can be started here: {proc.stderr.strip()[-400:]}")
    assert proc.returncode == 0, f"engine.sh up failed:\n{proc.stderr[-2000:]}"
    yield {**os.environ, "DOCKER_HOST": proc.stdout.strip().splitlines()[-1]}
    if not was_up:
        subprocess.run([str(ENGINE), "down"], cwd=ROOT, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def images(docker_env: dict[str, str]) -> dict[str, dict]:
    """`make images` (base, wheelhouse, both builds; cached steps are no-ops) -> build/images.json."""
    t0 = time.monotonic()
    proc = subprocess.run(
        ["make", "-s", "images"], cwd=ROOT, env=docker_env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
    )
    assert proc.returncode == 0, f"make images failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    manifest = json.loads(MANIFEST.read_text())
    print(
        f"make images: {time.monotonic() - t0:.0f} s; "
        + ", ".join(f"{k} {v['size_mb']} MB" for k, v in manifest.items())
    )
    return manifest


def docker(env: dict[str, str], *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the docker CLI against the test's engine."""
    proc = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"docker {' '.join(args)} failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"
    return proc


def run_python(env: dict[str, str], ref: str, code: str, check: bool = True) -> subprocess.CompletedProcess:
    """python -c CODE in `ref` as Lambda runs it: read-only root, writable /tmp only, no network."""
    return docker(
        env,
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--network",
        "none",
        "--entrypoint",
        "/opt/venv/bin/python",
        ref,
        "-c",
        code,
        check=check,
    )


def test_sizes_within_budget(images, docker_env):
    for name, budget in (("inference", 1000.0), ("orchestration", 250.0)):
        entry = images[name]
        size = int(docker(docker_env, "image", "inspect", "-f", "{{.Size}}", entry["local_ref"]).stdout) / 1e6
        assert entry["budget_mb"] == budget
        assert size <= budget, f"{name}: {size:.1f} MB > {budget} MB"


def test_tags_are_content_digests_and_rebuild_is_cached(images, docker_env):
    for name, entry in images.items():
        labels = json.loads(
            docker(docker_env, "image", "inspect", "-f", "{{json .Config.Labels}}", entry["local_ref"]).stdout
        )
        assert labels["org.cosmicai.image"] == name
        assert entry["local_ref"] == f"cosmicai-{name}:{labels['org.cosmicai.digest'][:16]}"
    again = subprocess.run(
        [
            str(ROOT / ".venv/bin/python"),
            "scripts/images/build.py",
            "--manifest",
            str(MANIFEST.with_name("images-rerun.json")),
        ],
        cwd=ROOT,
        env=docker_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = json.loads(MANIFEST.with_name("images-rerun.json").read_text())
    for name, entry in images.items():
        assert rerun[name]["local_ref"] == entry["local_ref"] and rerun[name]["cached"] is True


@pytest.mark.parametrize("name", ["inference", "orchestration"])
def test_non_root_without_build_tools(images, docker_env, name):
    ref = images[name]["local_ref"]
    assert docker(docker_env, "image", "inspect", "-f", "{{.Config.User}}", ref).stdout.strip() == "10001:10001"
    probe = docker(
        docker_env,
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        ref,
        "-c",
        "id -u; for t in gcc cc c++ g++ make ld as pip pip3; do command -v $t; done; "
        '/opt/venv/bin/python -c \'import importlib.util as u; print("pip:", u.find_spec("pip"))\'',
    ).stdout.split()
    assert probe[0] == "10001"
    assert probe[1:] == ["pip:", "None"], f"build tools left in {ref}: {probe[1:]}"


def test_inference_image_loads_baked_weights(images, docker_env):
    code = (
        "import os, cosmicai, torch, awslambdaric, pyarrow.parquet, cosmicai.handlers.infer\n"
        "from cosmicai.weights import default_weights_path, load_model\n"
        "m = load_model()\n"
        "x = torch.zeros(2, 5, 32, 32); mags = torch.zeros(2, 5)\n"
        "print(default_weights_path(), tuple(m(x, mags).shape))\n"
    )
    out = run_python(docker_env, images["inference"]["local_ref"], code).stdout.split()
    assert out[0] == "/opt/cosmicai/weights/astromae.safetensors"
    assert out[1:] in (["(2,)"], ["(2,", "1)"]), out


# Code no function runs (images/runtime_modules.py keeps each image's handlers' imports only).
CLI_ONLY = (
    "cosmicai.cli",
    "cosmicai.commands",
    "cosmicai.perf",
    "cosmicai.data.train",
    "cosmicai.data.generate",
    "rich",
)


@pytest.mark.parametrize(
    ("name", "handlers"),
    [
        ("inference", "cosmicai.handlers.infer"),
        ("orchestration", "cosmicai.handlers.init, cosmicai.handlers.summarize"),
    ],
)
def test_images_carry_their_handlers_and_no_cli_code(images, docker_env, name, handlers):
    code = (
        f"import importlib.util as u, pathlib, {handlers}\n"
        "def has(m):\n"
        "    try:\n"
        "        return u.find_spec(m) is not None\n"
        "    except ModuleNotFoundError:  # its parent package is gone too\n"
        "        return False\n"
        f"print(*[m for m in {CLI_ONLY!r} if has(m)], 'cli-only-end')\n"
        "print(*sorted(str(p) for p in pathlib.Path('/opt/cosmicai/site').rglob('*') if 'fault' in p.name))\n"
        "import os; os._exit(0)\n"
    )
    out = run_python(docker_env, images[name]["local_ref"], code).stdout.split()
    assert out == ["cli-only-end"], f"{name} image carries {out}"


def test_orchestration_has_handlers_and_catalogs_but_no_torch(images, docker_env):
    code = (
        "import importlib.util as u, numpy as np\n"
        "import cosmicai.handlers.init, cosmicai.handlers.summarize, awslambdaric\n"
        "from cosmicai.catalog import catalog_to_bytes, read_catalog\n"
        "t = read_catalog(catalog_to_bytes(np.arange(3), np.ones(3, np.float32), np.zeros(3, np.float32)))\n"
        "print(t.num_rows, u.find_spec('torch'), flush=True)\n"
        # Interpreter teardown is not part of what Lambda runs (the runtime process never
        # exits); under load pyarrow's thread pool once aborted it ("terminate called").
        "import os; os._exit(0)\n"
    )
    assert run_python(docker_env, images["orchestration"]["local_ref"], code).stdout.split() == ["3", "None"]


def _sandbox_invoke(box, event: dict):
    """One invoke of a sandbox (no LocalStack): its outcome."""
    return box.invoke(str(uuid.uuid4()), json.dumps(event).encode(), "arn:aws:lambda:us-east-1:000000000000:function:f")


@pytest.mark.docker
def test_docker_mode_runs_the_image_and_removes_the_container(images, docker_env):
    """The executor's docker-mode sandbox without LocalStack: the orchestration image's Init handler
    answers a bad event with its own PayloadError from inside the container, with init duration and
    the container's measured memory on the REPORT line; a container that never asks for an event
    times out; neither container is left afterwards (they run without --rm: the kill hook removes them)."""
    sys.path.insert(0, str(ROOT / "scripts/localstack_ext"))
    from cosmicai_localstack.docker_mode import Container, docker_spec
    from cosmicai_localstack.sandbox import Sandbox

    image = images["orchestration"]["local_ref"]
    name = f"cosmicai-lambda-test-{uuid.uuid4().hex[:8]}"
    lambda_vars = {
        "AWS_LAMBDA_FUNCTION_NAME": "init",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
    }
    box = Sandbox(docker_spec(Container(name, environ=docker_env), image, lambda_vars, 512, 20, environ=docker_env))
    sleeper = Sandbox(
        docker_spec(
            Container(name + "-s", environ=docker_env),
            image,
            lambda_vars,
            512,
            2,
            entrypoint=["python", "-c", "import time; time.sleep(120)"],
            environ=docker_env,
        )
    )
    try:
        box.start(wait_s=60)
        out = _sandbox_invoke(box, {"not": "a payload"})
        assert out.is_error and json.loads(out.payload)["errorType"] == "PayloadError", out.payload
        report = next(line for line in out.logs.splitlines() if line.startswith("REPORT "))
        assert "Init Duration: " in report, report
        used = int(report.split("Max Memory Used: ")[1].split(" MB")[0])
        assert 5 < used < 512, report  # measured from the container's processes
        sleeper.start(wait_s=3)
        late = _sandbox_invoke(sleeper, {})
        assert json.loads(late.payload)["errorType"] == "Sandbox.Timedout"
    finally:
        box.stop()
        sleeper.stop()
    assert docker(docker_env, "ps", "-aq", "--filter", f"name={name}").stdout.strip() == ""


def _machine_of(wheel: str) -> str:
    """The machine a wheel's platform tag names ('any' for pure Python)."""
    first_tag = wheel.removesuffix(".whl").rsplit("-", 1)[1].split(".")[0]  # e.g. manylinux_2_28_aarch64
    return next((m for m in ("aarch64", "x86_64") if first_tag.endswith(m)), first_tag)


def test_arm64_pins_resolve_to_aarch64_wheels_and_never_to_a_cuda_torch():
    """What `make images ARCHITECTURE=arm64` resolves first, run where no arm64 engine or emulator
    is (no engine needed): every pin of both images an aarch64 or pure wheel of the package
    index. torch is the CPU build from the PyTorch CPU index, or a named error when that index
    does not answer: PyPI's aarch64 torch 2.13.0 is a CUDA build (cuda-toolkit, nvidia-*)."""
    sys.path.insert(0, str(ROOT / "scripts/images"))
    from image_spec import IMAGES
    from wheelhouse import WheelhouseError, index_reachable, resolve

    if not index_reachable("https://pypi.org/simple"):
        pytest.skip("the package index does not answer")
    orch = resolve(IMAGES["orchestration"].roots, IMAGES["orchestration"].exclude, "arm64")
    inf = IMAGES["inference"]
    inference = resolve(tuple(r for r in inf.roots if r != "torch"), inf.exclude, "arm64")
    machines = {p.filename: _machine_of(p.filename) for p in orch + inference}
    assert set(machines.values()) <= {"aarch64", "any"}, machines
    assert any(p.name == "openvino" and machines[p.filename] == "aarch64" for p in inference)
    try:
        torch = next(p for p in resolve(("torch",), frozenset(), "arm64") if p.name == "torch")
    except WheelhouseError as exc:
        assert "No source offers the CPU build of torch (torch==2.13.0+cpu)" in str(exc), str(exc)[-2000:]
    else:
        assert torch.version.endswith("+cpu") and _machine_of(torch.filename) == "aarch64", torch


@pytest.fixture(scope="module")
def docker_localstack(images, docker_env) -> Iterator[dict[str, str]]:
    """A LocalStack whose Lambda executor runs functions' images from the test's engine."""
    if not LS_PYTHON.exists():
        subprocess.run(["make", "-s", "localstack-install"], cwd=ROOT, check=True)
    state = ROOT / f".state/test-localstack-docker-{DOCKER_LS_PORT}"
    where = ["--port", str(DOCKER_LS_PORT), "--state-dir", str(state)]
    launcher = [str(LS_PYTHON), "-m", "cosmicai_localstack.launcher"]
    up = subprocess.run(
        [
            *launcher,
            "up",
            *where,
            "--mode",
            "docker",
            "--project-root",
            str(ROOT),
            "--function-python",
            str(ROOT / ".venv/bin/python"),
        ],
        cwd=ROOT,
        env=docker_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert up.returncode == 0, f"LocalStack (docker mode) did not start:\n{up.stdout}\n{up.stderr}"
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{DOCKER_LS_PORT}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "STATE": str(state),
    }
    try:
        yield env
    finally:
        subprocess.run([*launcher, "down", *where], cwd=ROOT, env=docker_env, capture_output=True, timeout=120)


def _create(lam, name: str, ref: str, handler: str, memory: int) -> None:
    """An Image function as Terraform declares it; its ImageUri maps to the local tag `ref`."""
    lam.create_function(
        FunctionName=name,
        Role=ROLE,
        PackageType="Image",
        Code={"ImageUri": f"{REGISTRY}/{ref}"},
        ImageConfig={"Command": [handler]},
        Timeout=120,
        MemorySize=memory,
        Environment={"Variables": {"COSMICAI_LOG_LEVEL": "INFO"}},
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120})


def _invoke(lam, name: str, event: dict) -> dict:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    body = json.loads(resp["Payload"].read() or b"null")
    assert "FunctionError" not in resp, f"{name}: {body}"
    return body


def test_init_infer_summarize_run_in_their_images_in_docker_mode(images, docker_env, docker_localstack):
    """One run by hand through the three functions, each in its real image (no state machine)."""
    from cosmicai.shards import Shard, shard_to_bytes

    ls = docker_localstack
    kw = {
        "endpoint_url": ls["AWS_ENDPOINT_URL"],
        "region_name": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}), **kw)
    lam = boto3.client("lambda", config=Config(retries={"max_attempts": 0}, read_timeout=300), **kw)
    bucket, suffix = f"cosmicai-images-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=bucket)
    rng = np.random.default_rng(0)
    n = 48
    shard = Shard(
        object_ids=np.arange(n, dtype=np.int64),
        images=rng.random((n, 5, 32, 32), dtype=np.float32),
        magnitudes=rng.uniform(15, 22, (n, 5)).astype(np.float32),
        redshift=rng.uniform(0, 0.4, n).astype(np.float32),
    )
    s3.put_object(Bucket=bucket, Key="in/part-00000.safetensors", Body=shard_to_bytes(shard))

    orch, inf = images["orchestration"]["local_ref"], images["inference"]["local_ref"]
    names = {role: f"cosmicai-img-{role}-{suffix}" for role in ("init", "infer", "summarize")}
    # IAM is enforced as on AWS: the functions' role reads and writes this test's bucket, writes their logs
    statements = [
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"]},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": [f"arn:aws:s3:::{bucket}/*"]},
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": ["arn:aws:logs:*:000000000000:log-group:/aws/lambda/cosmicai-img-*"],
        },
    ]
    with scoped_role(boto3.client("iam", **kw), ROLE.rsplit("/", 1)[1], statements):
        _run_by_hand(lam, s3, names, orch, inf, bucket, n, docker_env, ls)


def _run_by_hand(lam, s3, names: dict, orch: str, inf: str, bucket: str, n: int, docker_env: dict, ls: dict) -> None:
    _create(lam, names["init"], orch, "cosmicai.handlers.init.handler", 512)
    _create(lam, names["infer"], inf, "cosmicai.handlers.infer.handler", 2048)
    _create(lam, names["summarize"], orch, "cosmicai.handlers.summarize.handler", 512)
    try:
        init = _invoke(
            lam, names["init"], {"input": f"s3://{bucket}/in/", "output": f"s3://{bucket}/out/", "batch_size": 16}
        )
        plan = json.loads(s3.get_object(**{k.capitalize(): v for k, v in init["plan"].items()})["Body"].read())
        assert len(plan) == 1 and plan[0]["objects"] == n
        result = _invoke(lam, names["infer"], plan[0])
        assert result == {"item_id": plan[0]["item_id"], "status": "succeeded", "objects": n}, result
        done = _invoke(lam, names["summarize"], {"action": "summarize", "init": init})
        assert done["status"] == "SUCCEEDED", done
        # Each ran in a container of its own image, started by this LocalStack.
        ps = docker(
            docker_env,
            "ps",
            "-a",
            "--filter",
            f"label=cosmicai.localstack.state={ls['STATE']}",
            "--format",
            "{{.Image}}",
        ).stdout.split()
        assert inf in ps and orch in ps, ps
    finally:
        for name in names.values():
            lam.delete_function(FunctionName=name)

    summary = json.loads(s3.get_object(Bucket=done["summary"]["bucket"], Key=done["summary"]["key"])["Body"].read())
    assert summary["objects"]["total"] == summary["objects"]["predicted"] == summary["objects"]["labelled"] == n
    assert summary["metrics"]["n"] == n  # Summarize read the catalog with the orchestration image's pyarrow
    from cosmicai.payload import split_s3_uri
    from cosmicai.runstore import RunLocation

    loc = RunLocation(*split_s3_uri(plan[0]["output"], "output"))
    report = json.loads(s3.get_object(Bucket=loc.bucket, Key=loc.worker_key(plan[0]["item_id"]))["Body"].read())
    assert report["cold_start"] is True and report["objects"] == n


def test_terraform_stack_runs_end_to_end_in_docker_mode(images, docker_env, docker_localstack, tmp_path, monkeypatch):
    """`make deploy` with the docker executor (functions = the real images), then the real state
    machine over labelled shards: SUCCEEDED, every object predicted; `make destroy` cleans up."""
    from itfixtures.pipeline import clients_for, run_on, upload_to
    from itfixtures.stack import leftovers, stack_with_prefix
    from tests.conftest import build_shard

    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(key, docker_localstack[key])
    endpoint = docker_localstack["AWS_ENDPOINT_URL"]
    stack = stack_with_prefix(endpoint, tmp_path / "stack", f"cosmicai-d{uuid.uuid4().hex[:6]}")
    stack.env.update(COSMICAI_EXECUTOR_MODE="docker", DOCKER_HOST=docker_env["DOCKER_HOST"])
    stack.deploy()
    outputs = stack.outputs()
    try:
        lam = boto3.client("lambda")
        infer = lam.get_function(FunctionName=outputs["function_names"]["infer"])["Code"]["ImageUri"]
        assert infer.endswith(images["inference"]["local_ref"].split(":", 1)[1]), infer  # the built digest tag

        clients = clients_for(endpoint, outputs)
        shards = [build_shard(40, seed=i, id_start=100 * i) for i in range(3)]
        result = run_on(clients, {"input": upload_to(clients, shards), "batch_size": 32}, timeout_s=480)
        assert result.status == "SUCCEEDED", (result.error, result.cause)
        objects = result.summary["objects"]
        assert objects["total"] == objects["predicted"] == 120 and objects["failed"] == 0
        assert len(result.prediction_keys()) == 3
    finally:
        stack.destroy()
    assert leftovers(endpoint, outputs) == []


@pytest.fixture(scope="module")
def faulty_inference_image(images, docker_env, tmp_path_factory) -> str:
    """The inference image plus the test-only fault wrapper (a test image: the product's never carries it)."""
    fixtures = ROOT / "tests/integration/lambda_fixtures"
    ctx = tmp_path_factory.mktemp("faulty-image")
    (ctx / "lambda_fixtures").mkdir()
    for name in ("faults.py", "faulty_infer.py"):
        (ctx / "lambda_fixtures" / name).write_bytes((fixtures / name).read_bytes())
    inference_ref = images["inference"]["local_ref"]
    (ctx / "Dockerfile").write_text(
        f"FROM {inference_ref}\n"
        "COPY lambda_fixtures/ /opt/cosmicai/test-site/tests/integration/lambda_fixtures/\n"
        "ENV PYTHONPATH=/opt/cosmicai/test-site\n"
    )
    tag = f"cosmicai-faulty-inference:{inference_ref.split(':', 1)[1]}"
    docker({**docker_env, "DOCKER_BUILDKIT": "0"}, "build", "-q", "-t", tag, str(ctx), timeout=300)
    return tag


# shard name -> (function timeout s, error type, what its message says)
IMAGE_FAULTS = {
    "fault-crash-0": (60, "Runtime.ExitError", "Runtime exited with error: exit status 3"),
    # The cold start (about 4 s of INIT here) counts against the timeout, as on Lambda.
    "fault-sleep-0": (20, "Sandbox.Timedout", "Task timed out after 20.00 seconds"),
    # AWS's body for an out-of-memory kill names the signal only
    "fault-oom-0": (60, "Runtime.OutOfMemory", "Runtime exited with error: signal: killed"),
}


def _container_events(env: dict[str, str], state: str, since: float) -> dict[str, list[tuple[str, dict]]]:
    """Docker's events since `since` for the containers the LocalStack at `state` started, by container id:
    (action, attributes) in order (the engine keeps them after the container is removed)."""
    out = docker(
        env,
        "events",
        "--since",
        f"{since:.3f}",
        "--until",
        f"{time.time():.3f}",
        "--filter",
        "type=container",
        "--filter",
        f"label=cosmicai.localstack.state={state}",
        "--format",
        "{{json .}}",
    ).stdout
    events: dict[str, list[tuple[str, dict]]] = {}
    for line in out.splitlines():
        event = json.loads(line)
        events.setdefault(event["Actor"]["ID"], []).append((event["Action"], event["Actor"]["Attributes"]))
    return events


def _before_die(actions: list[tuple[str, dict]]) -> list[str]:
    """The container's actions up to its first `die` (what ended it), and the `die` itself."""
    names = [action for action, _ in actions]
    return names[: names.index("die") + 1] if "die" in names else names


@pytest.mark.parametrize("shard_name", sorted(IMAGE_FAULTS))
def test_faults_in_the_real_inference_image_in_docker_mode(
    faulty_inference_image, docker_env, docker_localstack, shard_name
):
    """A crash, a timeout and an out-of-memory worker in the inference image (the fault wrapper
    layered on), each in a container capped by `docker run --memory 1024m --memory-swap 1024m`,
    end as Lambda's errors, and docker's events show who ended each container: the crash its own
    exit (status 3), the timeout the executor (`kill`), the out-of-memory one the kernel (`oom`,
    then `die` with 137, and no `kill` from us before it: docker mode has no sampling watchdog)."""
    timeout_s, error_type, message = IMAGE_FAULTS[shard_name]
    ls = docker_localstack
    kw = {
        "endpoint_url": ls["AWS_ENDPOINT_URL"],
        "region_name": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    lam = boto3.client("lambda", config=Config(retries={"max_attempts": 0}, read_timeout=300), **kw)
    name, memory = f"cosmicai-img-{shard_name}-{uuid.uuid4().hex[:8]}", 1024
    statements = [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": ["arn:aws:logs:*:000000000000:log-group:/aws/lambda/cosmicai-img-*"],
        }
    ]
    # The wrapper misbehaves before the real handler reads anything: no bucket is needed.
    shard = {"key": f"in/{shard_name}.safetensors", "name": shard_name, "bytes": 1, "count": 1}
    item = {
        "item_id": "item-00000",
        "run_id": "image-faults",
        "input_bucket": "none",
        "output": "s3://none/out/",
        "batch_size": 8,
        "precision": "fp32",
        "shards": [shard],
    }
    with scoped_role(boto3.client("iam", **kw), ROLE.rsplit("/", 1)[1], statements):
        lam.create_function(
            FunctionName=name,
            Role=ROLE,
            PackageType="Image",
            Code={"ImageUri": f"{REGISTRY}/{faulty_inference_image}"},
            ImageConfig={"Command": ["tests.integration.lambda_fixtures.faulty_infer.handler"]},
            Timeout=timeout_s,
            MemorySize=memory,
        )
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120})
        since = time.time() - 0.5  # the function's environment starts on its first invoke
        try:
            resp = lam.invoke(FunctionName=name, Payload=json.dumps(item).encode(), LogType="Tail")
        finally:
            lam.delete_function(FunctionName=name)
    body = json.loads(resp["Payload"].read() or b"null")
    logs = base64.b64decode(resp.get("LogResult", "")).decode(errors="replace")
    assert resp.get("FunctionError") == "Unhandled" and body["errorType"] == error_type, (body, logs)
    assert message in body["errorMessage"], body
    assert error_type in logs or "Task timed out" in logs, logs
    assert f"Memory Size: {memory} MB" in logs, logs

    time.sleep(0.5)
    # the one environment this invoke started (an earlier test's container may still be going away)
    events = {
        cid: acts for cid, acts in _container_events(docker_env, ls["STATE"], since).items() if acts[0][0] == "create"
    }
    assert len(events) == 1, events
    (actions,) = events.values()
    ended = _before_die(actions)
    die = dict(actions)["die"]
    if shard_name.startswith("fault-oom"):
        # the kernel's cgroup OOM killer ended it; nothing of ours signalled it first
        assert "oom" in ended and "kill" not in ended and die["exitCode"] == "137", actions
        assert f"Max Memory Used: {memory} MB" in logs, logs
    elif shard_name.startswith("fault-sleep"):
        assert "kill" in ended and "oom" not in ended, actions  # the executor's timeout
    else:
        assert ended[-2:] == ["start", "die"] and die["exitCode"] == "3", actions  # its own exit
    assert actions[-1][0] == "destroy", actions  # removed by the executor (no --rm)
