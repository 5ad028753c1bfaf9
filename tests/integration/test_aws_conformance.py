"""The local cloud answers as AWS does where our code depends on it (issue 14), and our code works so.

LocalStack's free build enforces no IAM and answers 404 for absent keys to anyone; our extension
(scripts/localstack_ext/cosmicai_localstack/iam_enforcement.py) authorizes every call made with a
deployed role's credentials against that role's policies and answers AccessDenied as AWS would.
These tests call as the deployed roles (STS AssumeRole, as Lambda and Step Functions do), check
the decisions AWS documents, and run the pipeline to show it makes no refused call.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from cosmicai.shards import shard_to_bytes
from itfixtures.acceptance import assert_accounting, client, new_area, start, wait
from tests.conftest import build_shard

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "localstack_ext"))
from cosmicai_localstack.iam_policy import AuthzRequest, evaluate, parse_policy  # noqa: E402


def iam_status(endpoint: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{endpoint}/_cosmicai/iam", timeout=5) as resp:
        return json.load(resp)


def role_of(stack: dict[str, Any], function: str) -> str:
    return client("lambda").get_function_configuration(FunctionName=stack["function_names"][function])["Role"]


def as_role(role_arn: str, service: str) -> Any:
    """A client with the role's STS credentials, as Lambda hands them to a function's environment."""
    creds = client("sts").assume_role(RoleArn=role_arn, RoleSessionName="conformance")["Credentials"]
    cfg = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})
    return boto3.client(
        service,
        config=cfg,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def error_of(call: Any) -> tuple[str, int] | None:
    """(error code, HTTP status) of a refused call; None when it succeeds."""
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]
    return None


def test_enforcement_is_on(localstack: Any) -> None:
    assert iam_status(localstack.endpoint)["enforced"] is True


def test_function_roles_get_the_answers_aws_gives(deployed_stack: dict[str, Any]) -> None:
    """AWS's documented decisions for the Init role (s3:ListBucket conditioned on s3:prefix)."""
    area = new_area(deployed_stack, "iam")
    key = area.put("part-00000.safetensors", shard_to_bytes(build_shard(2, seed=1)))
    s3 = as_role(role_of(deployed_stack, "init"), "s3")
    data, results = area.data_bucket, area.results_bucket
    # HeadBucket is s3:ListBucket with no s3:prefix in the request: the prefix condition is false
    assert error_of(lambda: s3.head_bucket(Bucket=data)) == ("403", 403)
    assert error_of(lambda: s3.list_objects_v2(Bucket=data, Prefix=area.input_prefix, MaxKeys=1)) is None
    assert error_of(lambda: s3.list_objects_v2(Bucket=data)) == ("AccessDenied", 403)
    assert error_of(lambda: s3.get_object(Bucket=data, Key=key)) is None
    # a missing key is 403, not 404, without an unconditional s3:ListBucket
    assert error_of(lambda: s3.get_object(Bucket=data, Key=area.input_prefix + "absent.json")) == ("AccessDenied", 403)
    assert error_of(lambda: s3.head_object(Bucket=data, Key=area.input_prefix + "absent.json")) == ("403", 403)
    # Init reads the data and writes only the results prefix
    assert error_of(lambda: s3.put_object(Bucket=data, Key=area.input_prefix + "x", Body=b"x")) == ("AccessDenied", 403)
    assert error_of(lambda: s3.put_object(Bucket=results, Key=area.output_prefix + "x", Body=b"x")) is None
    assert error_of(lambda: s3.put_object(Bucket=results, Key="elsewhere/x", Body=b"x")) == ("AccessDenied", 403)
    # the summarize role may not read the input data at all
    s3_sum = as_role(role_of(deployed_stack, "summarize"), "s3")
    assert error_of(lambda: s3_sum.get_object(Bucket=data, Key=key)) == ("AccessDenied", 403)
    # a function may not invoke functions (only the state machine does)
    lam = as_role(role_of(deployed_stack, "infer"), "lambda")
    assert error_of(
        lambda: lam.invoke(FunctionName=deployed_stack["function_names"]["init"], InvocationType="DryRun")
    ) == ("AccessDeniedException", 403)


def test_state_machine_role_invokes_its_functions_and_reaches_child_executions(deployed_stack: dict[str, Any]) -> None:
    sfn = client("stepfunctions")
    role_arn = sfn.describe_state_machine(stateMachineArn=deployed_stack["state_machine_arn"])["roleArn"]
    lam = as_role(role_arn, "lambda")
    for name in deployed_stack["function_names"].values():
        assert error_of(lambda fn=name: lam.invoke(FunctionName=fn, InvocationType="DryRun")) is None, name
    # The Map's child executions, which LocalStack runs internally (no API call to authorize), are
    # judged against the deployed policy with the same evaluator: execution:<name>/<label>:<id>.
    iam = client("iam")
    role_name = role_arn.rsplit("/", 1)[1]
    docs = [
        iam.get_role_policy(RoleName=role_name, PolicyName=p)["PolicyDocument"]
        for p in iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    ]
    policies = [parse_policy(json.loads(unquote(d)) if isinstance(d, str) else d) for d in docs]
    account = role_arn.split(":")[4]
    machine = deployed_stack["state_machine_name"]
    child = f"arn:aws:states:{deployed_stack['region']}:{account}:execution:{machine}/Infer-all-items:0f1e2d3c"
    for action in ("states:DescribeExecution", "states:StopExecution"):
        request = AuthzRequest(action=action, resource=child, principal_arn=role_arn, principal_account=account)
        assert evaluate(policies, request).allowed, action


def _denials_of(endpoint: str, roles: set[str], since: float) -> list[dict[str, Any]]:
    return [d for d in iam_status(endpoint)["denials"] if d["role"] in roles and d["time"] >= since]


def _stack_roles(stack: dict[str, Any]) -> set[str]:
    sm_role = client("stepfunctions").describe_state_machine(stateMachineArn=stack["state_machine_arn"])["roleArn"]
    return {role_of(stack, f) for f in ("init", "infer", "summarize")} | {sm_role}


def test_bad_objects_never_fail_the_run_and_nothing_is_refused(localstack: Any, deployed_stack: dict[str, Any]) -> None:
    """Whatever the bytes (empty, garbage, truncated, a bad manifest), every object ends predicted
    or listed as failed with its reason, and the stack's roles make no call AWS would refuse."""
    since = time.time()
    area = new_area(deployed_stack, "badobj")
    good = [build_shard(5, seed=i, id_start=100 * i) for i in range(2)]
    area.put("part-00000.safetensors", shard_to_bytes(good[0]))
    area.put("part-00001.safetensors", shard_to_bytes(good[1]))
    area.put("part-00002.safetensors", b"")  # a ranged GET of an empty object is 416 InvalidRange on S3
    area.put("part-00003.npz", b"PK\x03\x04 not a zip")
    area.put("part-00004.safetensors", shard_to_bytes(build_shard(4, seed=9))[:-300])
    area.put("notes.txt", b"not a shard")
    area.put("manifest.json", b'{"format": "cosmicai.manifest", "shards": "oops"}')
    desc = wait(start(deployed_stack, area.payload()), timeout_s=300)
    assert desc["status"] == "SUCCEEDED", desc
    summary = area.result("summary.json")
    assert summary["status"] == "PARTIAL", summary["status"]
    planned = [
        area.input_prefix + n
        for n in (
            "part-00000.safetensors",
            "part-00001.safetensors",
            "part-00002.safetensors",
            "part-00003.npz",
            "part-00004.safetensors",
        )
    ]
    assert_accounting(summary, expected_objects=summary["objects"]["total"], planned_keys=planned)
    assert summary["objects"]["predicted"] == 10
    reasons = {f["shard"].rsplit("/", 1)[1]: f["error"] for f in summary["shards"]["failures"]}
    assert set(reasons) == {"part-00002.safetensors", "part-00003.npz", "part-00004.safetensors"}, reasons
    assert reasons["part-00002.safetensors"] == "unreadable"
    assert any("manifest.json" in w for w in area.result("run.json")["warnings"])
    assert _denials_of(localstack.endpoint, _stack_roles(deployed_stack), since) == []
    # LocalStack's log writer calls CreateLogGroup with the function's role first (AWS's Lambda
    # does not need it for an existing group): the lines must still arrive under enforcement.
    for function in ("init", "infer", "summarize"):
        group = deployed_stack["log_group_names"][function]
        assert client("logs").describe_log_streams(logGroupName=group)["logStreams"], f"no logs in {group}"


def test_a_fan_out_four_times_the_reserved_concurrency_ends_complete(deployed_stack: dict[str, Any]) -> None:
    """Lambda answers TooManyRequestsException beyond a function's reserved concurrency; the state
    machine's retries (backoff + jitter) carry the run through with nothing lost or done twice."""
    lam = client("lambda")
    infer = deployed_stack["function_names"]["infer"]
    area = new_area(deployed_stack, "throttle")
    n_items, per_shard = 8, 16
    area.put_many(
        [
            (f"part-{i:05d}.safetensors", shard_to_bytes(build_shard(per_shard, seed=i, id_start=1000 * i)))
            for i in range(n_items)
        ]
    )
    # The limit really applies (deterministically: a reserved concurrency of 0 throttles every invoke),
    # then the run goes at 4x a reserved concurrency of 1.
    lam.put_function_concurrency(FunctionName=infer, ReservedConcurrentExecutions=0)
    try:
        refused = error_of(lambda: lam.invoke(FunctionName=infer, Payload=b"{}"))
        assert refused == ("TooManyRequestsException", 429), refused
        lam.put_function_concurrency(FunctionName=infer, ReservedConcurrentExecutions=1)
        desc = wait(start(deployed_stack, area.payload(max_concurrency=4)), timeout_s=600)
    finally:
        lam.delete_function_concurrency(FunctionName=infer)
    assert desc["status"] == "SUCCEEDED", desc
    summary = area.result("summary.json")
    planned = [area.input_prefix + f"part-{i:05d}.safetensors" for i in range(n_items)]
    assert_accounting(summary, expected_objects=n_items * per_shard, planned_keys=planned)
    assert summary["objects"]["predicted"] == n_items * per_shard
    reports = area.result_keys("workers/")
    assert len(reports) == n_items, reports  # one report per item: none lost, none written twice
    catalogs = area.result_keys("predictions/")
    assert len(catalogs) == n_items, catalogs


def test_lambda_refuses_a_payload_over_six_mb(deployed_stack: dict[str, Any]) -> None:
    """Lambda's synchronous payload quota (6 MB) is refused before any environment runs."""
    big = json.dumps({"pad": "x" * (6 * 1024 * 1024)}).encode()
    refused = error_of(
        lambda: client("lambda").invoke(FunctionName=deployed_stack["function_names"]["summarize"], Payload=big)
    )
    assert refused == ("RequestEntityTooLargeException", 413)
