"""The local Lambda executor through LocalStack's own Lambda API (process mode).

Functions are created with boto3 exactly as Terraform declares them (package type Image,
handler in ImageConfig.Command, code from the project tree), plus one Zip function; each
test checks what a caller on AWS would see: result, FunctionError, timeouts, logs.
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from itfixtures.iam import scoped_role

FIXTURES = "tests.integration.lambda_fixtures"
ROLE = "arn:aws:iam::000000000000:role/cosmicai-test-lambda"
IMAGE_URI = "000000000000.dkr.ecr.us-east-1.localhost.localstack.cloud:4566/cosmicai-test:local"
SUFFIX = uuid.uuid4().hex[:8]


def _client(service: str):
    # no retries: a timed-out or failed invoke must surface once, as it happened
    return boto3.client(service, config=Config(retries={"max_attempts": 0}, read_timeout=120, connect_timeout=10))


@pytest.fixture(scope="module")
def lam(localstack):
    return _client("lambda")


@pytest.fixture(scope="module")
def role(localstack):
    """The functions' and the test state machine's role: the local cloud enforces IAM as AWS does,
    so it must allow what they do: write their logs, and (state machine) invoke them."""
    statements = [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": ["arn:aws:logs:*:000000000000:log-group:/aws/lambda/cosmicai-it-*"],
        },
        {
            "Effect": "Allow",
            "Action": ["lambda:InvokeFunction"],
            "Resource": ["arn:aws:lambda:*:000000000000:function:cosmicai-it-*"],
        },
    ]
    with scoped_role(_client("iam"), ROLE.rsplit("/", 1)[1], statements) as arn:
        yield arn


@pytest.fixture(scope="module")
def functions(lam, role):
    """Create the fixture functions once; delete them (and so their environments) at the end."""
    specs = {
        "echo": (f"{FIXTURES}.echo.handler", 10, 512),
        "fail": (f"{FIXTURES}.echo.fail", 10, 256),
        "sleep": (f"{FIXTURES}.echo.sleep", 1, 256),
        "crash": (f"{FIXTURES}.echo.crash", 10, 256),
        "par": (f"{FIXTURES}.echo.window", 20, 256),
        "broken": (f"{FIXTURES}.broken.handler", 10, 256),
        "pause": (f"{FIXTURES}.echo.pause", 20, 256),
    }
    names = {}
    for key, (handler, timeout, memory) in specs.items():
        name = f"cosmicai-it-{key}-{SUFFIX}"
        lam.create_function(
            FunctionName=name,
            Role=ROLE,
            PackageType="Image",
            Code={"ImageUri": IMAGE_URI},
            ImageConfig={"Command": [handler]},
            Timeout=timeout,
            MemorySize=memory,
            Environment={"Variables": {"COSMICAI_LOG_LEVEL": "INFO"}},
        )
        names[key] = name
    for name in names.values():
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})
    yield names
    for name in names.values():
        lam.delete_function(FunctionName=name)


def invoke(lam, name: str, event: dict) -> tuple[dict, dict]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    return resp, json.loads(resp["Payload"].read() or b"null")


def test_image_function_returns_its_result(lam, functions, localstack):
    resp, body = invoke(lam, functions["echo"], {"hello": "world"})
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp, body
    assert body["event"] == {"hello": "world"}
    assert body["function_name"] == functions["echo"] and body["memory_size"] == "512"
    assert body["endpoint"] == localstack.endpoint  # clients in the function reach this LocalStack
    _, again = invoke(lam, functions["echo"], {"n": 2})
    assert again["pid"] == body["pid"]  # the warm environment is reused


def test_exception_is_function_error(lam, functions):
    resp, body = invoke(lam, functions["fail"], {"why": "integration"})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "FixtureError" and "asked to fail: integration" in body["errorMessage"]


def test_timeout_is_sandbox_timedout(lam, functions):
    t0 = time.monotonic()
    resp, body = invoke(lam, functions["sleep"], {"seconds": 30})
    assert time.monotonic() - t0 < 15
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Sandbox.Timedout" and "Task timed out after 1.00 seconds" in body["errorMessage"]
    # the killed environment is replaced: the next invoke succeeds
    resp, body = invoke(lam, functions["sleep"], {"seconds": 0})
    assert "FunctionError" not in resp and body == {"slept": 0}


def test_crash_and_init_error_are_named(lam, functions):
    resp, body = invoke(lam, functions["crash"], {"code": 7})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError" and "exit status 7" in body["errorMessage"]
    resp, body = invoke(lam, functions["broken"], {})
    assert resp["FunctionError"] == "Unhandled" and "cannot be imported on purpose" in body["errorMessage"]


def test_parallel_invokes_run_in_separate_environments(lam, functions):
    # Proven by what the invokes saw, not by a wall-clock budget: three environments (pids) whose
    # sleeps overlap in time, however slow the machine is.
    name = functions["par"]
    invoke(lam, name, {"seconds": 0})  # one warm environment; the other two start cold
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: invoke(lam, name, {"seconds": 2}), range(3)))
    assert all("FunctionError" not in r for r, _ in results), results
    spans = [b for _, b in results]
    assert len({s["pid"] for s in spans}) == 3, f"not three environments: {spans}"
    assert max(s["start"] for s in spans) < min(s["end"] for s in spans), f"the three sleeps did not overlap: {spans}"


def test_report_lines_reach_cloudwatch(lam, functions):
    name = functions["echo"]
    invoke(lam, name, {"for": "logs"})
    logs = _client("logs")
    group = f"/aws/lambda/{name}"
    deadline = time.monotonic() + 20
    reports: list[str] = []
    while time.monotonic() < deadline:
        try:
            events = logs.filter_log_events(logGroupName=group)["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []
        reports = [e["message"] for e in events if e["message"].startswith("REPORT RequestId:")]
        if len(reports) >= 2:
            break
        time.sleep(0.5)
    assert len(reports) >= 2, reports
    first = next(r for r in reports if "Init Duration:" in r)
    for field in ("Duration:", "Billed Duration:", "Memory Size: 512 MB", "Max Memory Used:"):
        assert field in first
    assert any("Init Duration:" not in r for r in reports)  # warm invokes report no init
    messages = [e["message"] for e in logs.filter_log_events(logGroupName=group)["events"]]
    assert any(m.startswith("START RequestId:") for m in messages) and any(
        m.startswith("END RequestId:") for m in messages
    )


def test_zip_function_runs_in_process_mode(lam, localstack):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return {'doubled': event['x'] * 2}\n")
    name = f"cosmicai-it-zip-{SUFFIX}"
    lam.create_function(
        FunctionName=name,
        Role=ROLE,
        Runtime="python3.12",
        Handler="app.handler",
        Code={"ZipFile": buf.getvalue()},
        Timeout=10,
    )
    try:
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 60})
        resp, body = invoke(lam, name, {"x": 21})
        assert "FunctionError" not in resp and body == {"doubled": 42}
    finally:
        lam.delete_function(FunctionName=name)


def test_step_functions_map_reuses_at_most_max_concurrency_environments(lam, functions):
    """An inline Map over 10 overlapping-if-allowed items with MaxConcurrency 2: 10 invokes, at most 2 environments."""
    arn = lam.get_function(FunctionName=functions["pause"])["Configuration"]["FunctionArn"]
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 2,
                "End": True,
                "Iterator": {
                    "StartAt": "Invoke",
                    "States": {
                        "Invoke": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": arn, "Payload.$": "$"},
                            "ResultSelector": {"pid.$": "$.Payload.pid", "i.$": "$.Payload.event.i"},
                            "End": True,
                        }
                    },
                },
            }
        },
    }
    sfn = _client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"cosmicai-it-map-{SUFFIX}", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    try:
        run = sfn.start_execution(
            stateMachineArn=machine, input=json.dumps({"items": [{"i": i, "seconds": 0.3} for i in range(10)]})
        )
        deadline = time.monotonic() + 60
        while (desc := sfn.describe_execution(executionArn=run["executionArn"]))[
            "status"
        ] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.3)
        assert desc["status"] == "SUCCEEDED", desc
        out = json.loads(desc["output"])
        assert sorted(o["i"] for o in out) == list(range(10))
        assert 1 <= len({o["pid"] for o in out}) <= 2
    finally:
        sfn.delete_state_machine(stateMachineArn=machine)
