"""The executor's Runtime API server and sandbox, driven by a real `python -m awslambdaric` client.

No LocalStack here: the sandbox runs the project venv's python against fixture handlers in
tests/integration/lambda_fixtures and must return results, Lambda errors and AWS-format logs.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "localstack_ext"))

from cosmicai_localstack import lambda_format as fmt  # noqa: E402
from cosmicai_localstack.proc_stats import process_tree, tree_peak_rss_mb  # noqa: E402
from cosmicai_localstack.process_env import (  # noqa: E402
    ExecutorConfigError,
    docker_argv,
    executor_mode,
    local_image_tag,
    process_argv,
    process_spec_env,
    resolve_handler,
)
from cosmicai_localstack.sandbox import ExitInfo, Sandbox, SandboxSpec  # noqa: E402

FIXTURES = "tests.integration.lambda_fixtures"
ARN = "arn:aws:lambda:us-east-1:000000000000:function:fixture"
REPORT = re.compile(
    r"^REPORT RequestId: (?P<id>\S+)\tDuration: (?P<d>\d+\.\d\d) ms\tBilled Duration: (?P<b>\d+) ms\t"
    r"Memory Size: (?P<m>\d+) MB\tMax Memory Used: (?P<u>\d+) MB\t"
    r"(?:Init Duration: (?P<i>\d+\.\d\d) ms\t)?(?:Status: (?P<s>\w+)\t)?$"
)


def make_sandbox(handler: str, timeout_s: float = 5.0, memory_mb: int = 512, **spec_fields) -> Sandbox:
    env = process_spec_env(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "fixture",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": memory_mb,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
            "_HANDLER": handler,
        },
        ROOT,
    )
    return Sandbox(
        SandboxSpec(
            argv=process_argv(sys.executable, handler),
            env=env,
            memory_mb=memory_mb,
            timeout_s=timeout_s,
            cwd=str(ROOT),
            **spec_fields,
        )
    )


@pytest.fixture
def sandboxes():
    made: list[Sandbox] = []

    def factory(*args, **kwargs) -> Sandbox:
        box = make_sandbox(*args, **kwargs)
        made.append(box)
        return box

    yield factory
    for box in made:
        box.stop()


def invoke(box: Sandbox, event: dict):
    rid = str(uuid.uuid4())
    out = box.invoke(rid, json.dumps(event).encode(), ARN)
    assert out.request_id == rid
    return out


def report_of(logs: str) -> re.Match:
    lines = [line for line in logs.splitlines() if line.startswith("REPORT ")]
    assert len(lines) == 1, logs
    match = REPORT.match(lines[0] + ("" if lines[0].endswith("\t") else "\t"))
    assert match, lines[0]
    return match


def test_result_env_and_logs_in_aws_format(sandboxes):
    box = sandboxes(f"{FIXTURES}.echo.handler", memory_mb=700)
    box.start(wait_s=20)
    first = invoke(box, {"x": 1})
    assert not first.is_error, first.payload
    body = json.loads(first.payload)
    assert body["event"] == {"x": 1}
    assert body["request_id"] == first.request_id
    assert body["function_name"] == "fixture" and body["memory_size"] == "700"
    assert 0 < body["remaining_ms"] <= 5000
    lines = first.logs.splitlines()
    # init output comes before START, the handler's own line between START and END, REPORT last
    assert lines.index("echo fixture: init") < lines.index(fmt.start_line(first.request_id))
    assert f"echo fixture: handling {first.request_id}" in lines
    assert lines[-2] == fmt.end_line(first.request_id)
    rep = report_of(first.logs)
    assert rep["m"] == "700" and rep["i"] is not None and float(rep["i"]) > 10
    # billed = duration + init, rounded up to 1 ms (AWS bills the init phase)
    assert int(rep["b"]) == max(1, -(-(float(rep["d"]) + float(rep["i"])) // 1))
    assert 5 < int(rep["u"]) < 700  # a python process: measured, neither 0 nor the limit

    second = invoke(box, {"x": 2})
    assert json.loads(second.payload)["pid"] == body["pid"]  # warm: same process
    assert report_of(second.logs)["i"] is None  # Init Duration only on the first invoke
    assert "echo fixture: init" not in second.logs


def test_exception_is_a_function_error(sandboxes):
    box = sandboxes(f"{FIXTURES}.echo.fail")
    box.start(wait_s=20)
    out = invoke(box, {"why": "testing"})
    assert out.is_error
    err = json.loads(out.payload)
    assert err["errorType"] == "FixtureError" and "asked to fail: testing" in err["errorMessage"]
    assert "stackTrace" in err
    assert report_of(out.logs)["s"] is None  # a handled function error is not a sandbox failure


def test_timeout_kills_and_next_invoke_reinits(sandboxes):
    box = sandboxes(f"{FIXTURES}.echo.sleep", timeout_s=1.0)
    box.start(wait_s=20)
    pid = box.pid
    out = invoke(box, {"seconds": 30})
    assert out.is_error
    err = json.loads(out.payload)
    assert err["errorType"] == "Sandbox.Timedout"
    assert err["errorMessage"].endswith(f"{out.request_id} Task timed out after 1.00 seconds")
    rep = report_of(out.logs)
    assert rep["d"] == "1000.00" and rep["s"] == "timeout"
    assert "echo fixture: sleeping" in out.logs
    assert box.pid is None and not os.path.exists(f"/proc/{pid}/status") or _is_zombie_or_gone(pid)
    again = invoke(box, {"seconds": 0})
    assert not again.is_error and json.loads(again.payload) == {"slept": 0}
    assert report_of(again.logs)["i"] is not None  # a fresh environment reports its init again


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def test_crash_is_runtime_exit_error(sandboxes):
    box = sandboxes(f"{FIXTURES}.echo.crash")
    box.start(wait_s=20)
    out = invoke(box, {"code": 3})
    err = json.loads(out.payload)
    assert out.is_error and err["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in err["errorMessage"]
    assert "echo fixture: crashing" in out.logs and report_of(out.logs)["s"] == "error"


def test_init_error_is_reported_on_invoke(sandboxes):
    box = sandboxes(f"{FIXTURES}.broken.handler")
    box.start(wait_s=20)  # start returns: the failure belongs to the invoke, as on AWS
    out = invoke(box, {})
    err = json.loads(out.payload)
    assert out.is_error and err["errorType"].startswith("Runtime.")
    assert "cannot be imported on purpose" in err["errorMessage"]
    assert report_of(out.logs)["i"] is not None


def test_memory_limit_gives_out_of_memory(sandboxes):
    box = sandboxes(f"{FIXTURES}.echo.allocate", memory_mb=128)
    box.start(wait_s=20)
    out = invoke(box, {"mb": 200, "hold": 3})
    err = json.loads(out.payload)
    assert out.is_error and err["errorType"] == "Runtime.OutOfMemory", err
    assert int(report_of(out.logs)["u"]) > 128


def test_parallel_environments(sandboxes):
    boxes = [sandboxes(f"{FIXTURES}.echo.handler") for _ in range(3)]
    for box in boxes:
        box.start(wait_s=20)
    results: dict[int, dict] = {}

    def run(i: int) -> None:
        results[i] = json.loads(invoke(boxes[i], {"i": i}).payload)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r["event"]["i"] for r in results.values()) == [0, 1, 2]
    assert len({r["pid"] for r in results.values()}) == 3


def test_stop_kills_the_process_group(sandboxes):
    box = sandboxes(f"{FIXTURES}.echo.handler")
    box.start(wait_s=20)
    pid = box.pid
    assert pid in process_tree(os.getpid()) and tree_peak_rss_mb(pid) > 5
    box.stop()
    assert _is_zombie_or_gone(pid)
    with pytest.raises(RuntimeError, match="stopped"):
        invoke(box, {})


def test_handler_resolution_and_commands():
    assert resolve_handler("f", None, ["m.h"]) == "m.h"
    assert resolve_handler("f", "a.b", ["m.h"]) == "a.b"
    assert resolve_handler("f", None, None, ["c.d"]) == "c.d"
    with pytest.raises(ExecutorConfigError, match="function f: no handler"):
        resolve_handler("f", None, [], None)
    assert (
        local_image_tag("000000000000.dkr.ecr.us-east-1.localhost.localstack.cloud:4566/cosmicai-infer:dev")
        == "cosmicai-infer:dev"
    )
    assert local_image_tag("localhost:5000/x:1") == "x:1"
    assert local_image_tag("cosmicai-infer:dev") == "cosmicai-infer:dev"
    argv = docker_argv("env1", "x:1", ["A", "B"], 512, command=["m.h"])
    assert argv[:2] == ["docker", "run"] and "host" in argv and argv[-2:] == ["x:1", "m.h"]
    assert argv[argv.index("--memory") + 1] == "512m" and ["-e", "A"] == argv[argv.index("A") - 1 : argv.index("A") + 1]
    # the kernel's limit, with no swap to spill into; kept after exit so State.OOMKilled can be read
    assert argv[argv.index("--memory-swap") + 1] == "512m" and "--rm" not in argv
    assert executor_mode({}) == "process" and executor_mode({"COSMICAI_EXECUTOR_MODE": "docker"}) == "docker"
    with pytest.raises(ExecutorConfigError, match="COSMICAI_EXECUTOR_MODE"):
        executor_mode({"COSMICAI_EXECUTOR_MODE": "vm"})


def test_report_line_format():
    line = fmt.report_line("r1", 12.341, 3008, 411.2, 812.5)
    assert line == (
        "REPORT RequestId: r1\tDuration: 12.34 ms\tBilled Duration: 825 ms\tMemory Size: 3008 MB\t"
        "Max Memory Used: 412 MB\tInit Duration: 812.50 ms\t"
    )


def test_stop_during_an_invoke_ends_it_at_once(sandboxes):
    box = sandboxes(f"{FIXTURES}.echo.sleep", timeout_s=60)
    box.start(wait_s=20)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(out=invoke(box, {"seconds": 50})))
    worker.start()
    deadline = time.monotonic() + 30
    while "echo fixture: sleeping" not in box.history() and time.monotonic() < deadline:
        time.sleep(0.05)  # the handler is running now
    box.stop()  # LocalStack stops environments from another thread
    t0 = time.monotonic()
    worker.join(30)
    assert time.monotonic() - t0 < 10, "the invoke waited for its timeout instead of ending with the stop"
    out = outcome["out"]
    assert out.is_error and json.loads(out.payload)["errorType"] == "Runtime.ExitError"
    assert box.pid is None


def test_process_tree_matches_a_full_scan():
    import subprocess

    from cosmicai_localstack import proc_stats

    child = subprocess.Popen(["bash", "-c", "sleep 30 & sleep 30; wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(proc_stats.process_tree(child.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        tree = proc_stats.process_tree(os.getpid())
        assert sorted(tree) == sorted(proc_stats._process_tree_by_scan(os.getpid()))
        assert {child.pid, os.getpid()} <= set(tree) and len(proc_stats.process_tree(child.pid)) == 3
    finally:
        os.killpg(child.pid, 9)  # its own process group: the shell and both sleeps
        child.wait()


def test_children_left_by_a_crashed_runtime_are_killed(sandboxes):
    box = sandboxes(f"{FIXTURES}.echo.orphan")
    box.start(wait_s=20)
    out = invoke(box, {})
    assert json.loads(out.payload)["errorType"] == "Runtime.ExitError"
    child = int(re.search(r"echo fixture: child (\d+)", out.logs).group(1))
    deadline = time.monotonic() + 5
    while not _is_zombie_or_gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _is_zombie_or_gone(child)


def test_a_kernel_oom_kill_is_out_of_memory_and_a_sigkill_otherwise_an_exit_error(sandboxes):
    """How docker mode classifies an exited runtime, with the container's state (exit_info) stubbed: the
    kernel's OOM kill is Runtime.OutOfMemory with AWS's message and Max Memory Used at the size; another
    signal is a Runtime.ExitError naming it. exit_info is read before the kill hook (docker rm) runs."""
    calls: list[str] = []

    def oom_killed(returncode):
        calls.append(f"exit_info {returncode}")
        return ExitInfo(-9, oom_killed=True)

    box = sandboxes(
        f"{FIXTURES}.echo.crash", memory_mb=256, exit_info=oom_killed, kill_hook=lambda: calls.append("kill_hook")
    )
    box.start(wait_s=20)
    out = invoke(box, {"code": 137})
    err = json.loads(out.payload)
    assert err == {
        "errorType": "Runtime.OutOfMemory",
        "errorMessage": f"RequestId: {out.request_id} Error: Runtime exited with error: signal: killed",
    }
    assert (
        f"RequestId: {out.request_id} Error: Runtime exited with error: signal: killed\nRuntime.OutOfMemory" in out.logs
    )
    rep = report_of(out.logs)
    assert rep["u"] == "256" and rep["s"] == "error"
    assert calls == ["exit_info 137", "kill_hook"]

    box = sandboxes(f"{FIXTURES}.echo.crash", exit_info=lambda code: ExitInfo(-9))
    box.start(wait_s=20)
    err = json.loads(invoke(box, {"code": 137}).payload)
    assert err["errorType"] == "Runtime.ExitError" and err["errorMessage"].endswith("signal: killed"), err


def test_without_the_watchdog_the_sandbox_does_not_kill_for_memory(sandboxes):
    """Docker mode turns the sampling watchdog off (the cgroup limit is the authority): a runtime over its
    size is left to whatever limits it, and its peak is still measured for Max Memory Used."""
    box = sandboxes(f"{FIXTURES}.echo.allocate", memory_mb=128, enforce_memory=False)
    box.start(wait_s=20)
    out = invoke(box, {"mb": 200, "hold": 0.5})
    assert not out.is_error and json.loads(out.payload) == {"allocated_mb": 200}
    assert int(report_of(out.logs)["u"]) > 200


def test_a_short_memory_spike_between_samples_is_still_out_of_memory(sandboxes):
    box = sandboxes(f"{FIXTURES}.echo.allocate", memory_mb=128)
    box.start(wait_s=20)
    out = invoke(box, {"mb": 200, "hold": 0})  # allocate, touch, free and return well within one sampling period
    assert out.is_error and json.loads(out.payload)["errorType"] == "Runtime.OutOfMemory"
