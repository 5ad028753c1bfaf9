"""`make deploy` on LocalStack: what Terraform created is what the configuration says.

Uses the session's `deployed_stack` (real Terraform through the project's deploy code
against a real LocalStack) and reads every resource back through boto3. That fixture's
teardown is the `make destroy` test: it fails the session when anything is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from itfixtures.stack import ROOT, StackCli, executor_mode

pytestmark = pytest.mark.integration

ROLES = ("init", "infer", "summarize")
COMMANDS = {role: [f"cosmicai.handlers.{role}.handler"] for role in ROLES}


def _client(service: str):
    return boto3.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")


def test_outputs_name_everything_the_makefile_needs(deployed_stack: dict) -> None:
    for key in (
        "state_machine_arn",
        "data_bucket",
        "results_bucket",
        "data_uri",
        "results_uri",
        "function_names",
        "function_arns",
        "log_group_names",
        "ecr_repository_urls",
        "image_uris",
    ):
        assert deployed_stack.get(key), f"output {key} is missing or empty"
    assert set(deployed_stack["function_names"]) == set(ROLES)
    assert deployed_stack["data_uri"] == f"s3://{deployed_stack['data_bucket']}/shards/"
    assert deployed_stack["results_uri"] == f"s3://{deployed_stack['results_bucket']}/runs/"
    assert deployed_stack["target"] == os.environ["AWS_ENDPOINT_URL"]


@pytest.mark.parametrize("bucket_key", ["data_bucket", "results_bucket"])
def test_buckets_are_encrypted_private_and_tls_only(deployed_stack: dict, bucket_key: str) -> None:
    s3, bucket = _client("s3"), deployed_stack[bucket_key]
    sse = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    statement = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"][0]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert any(r.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation") == 7 for r in rules)


def test_results_bucket_expires_old_runs_only(deployed_stack: dict) -> None:
    s3 = _client("s3")
    rules = s3.get_bucket_lifecycle_configuration(Bucket=deployed_stack["results_bucket"])["Rules"]
    expiring = [r for r in rules if "Expiration" in r]
    assert [r["Filter"].get("Prefix") for r in expiring] == ["runs/"]
    data_rules = s3.get_bucket_lifecycle_configuration(Bucket=deployed_stack["data_bucket"])["Rules"]
    assert not any("Expiration" in r for r in data_rules), "input shards must never expire"


@pytest.mark.parametrize("role", ROLES)
def test_functions_are_active_container_images(deployed_stack: dict, role: str) -> None:
    lam = _client("lambda")
    conf = lam.get_function(FunctionName=deployed_stack["function_names"][role])["Configuration"]
    assert conf["PackageType"] == "Image"
    assert conf["State"] == "Active", conf.get("StateReason")
    assert conf["ImageConfigResponse"]["ImageConfig"]["Command"] == COMMANDS[role]
    image = deployed_stack["image_uris"]["inference" if role == "infer" else "orchestration"]
    assert lam.get_function(FunctionName=conf["FunctionName"])["Code"]["ImageUri"] == image
    repo = deployed_stack["ecr_repository_urls"]["inference" if role == "infer" else "orchestration"]
    if executor_mode() == "docker":
        # The local build, under the ECR registry (the executor maps it back to the local image).
        built = json.loads((ROOT / "build/images.json").read_text())
        assert (
            image
            == f"{repo.split('/', 1)[0]}/{built['inference' if role == 'infer' else 'orchestration']['local_ref']}"
        )
    else:
        # Process mode: no image is built, the URI is the repository's fixed local tag.
        assert image == f"{repo}:local"
    assert conf["Environment"]["Variables"]["COSMICAI_LOG_LEVEL"] == "INFO"
    # infer_backend's default, on the inference function only
    assert conf["Environment"]["Variables"].get("COSMICAI_BACKEND") == ("torch" if role == "infer" else None)
    if role == "infer":
        assert conf["MemorySize"] == deployed_stack["infer_memory_mb"]
        assert conf["Timeout"] == 900


@pytest.mark.parametrize("role", ROLES)
def test_each_function_has_its_own_least_privilege_role(deployed_stack: dict, role: str) -> None:
    lam, iam = _client("lambda"), _client("iam")
    role_arn = lam.get_function(FunctionName=deployed_stack["function_names"][role])["Configuration"]["Role"]
    role_name = role_arn.rsplit("/", 1)[1]
    # role names carry the region's code, so one prefix deploys to two regions without a clash
    assert role_name == f"{deployed_stack['function_names'][role]}-use1-role"
    (policy_name,) = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
    attached = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
    doc = json.loads(attached) if isinstance(attached, str) else attached
    assert doc == json.loads(deployed_stack["iam_policies"][role])
    resources = [r for s in doc["Statement"] for r in s["Resource"]]
    assert "*" not in resources
    data_arn = f"arn:aws:s3:::{deployed_stack['data_bucket']}/shards/*"
    assert (data_arn in resources) == (role != "summarize")


def test_no_policy_grants_wildcard_actions_on_wildcard_resources(deployed_stack: dict) -> None:
    iam = _client("iam")
    for role, text in deployed_stack["iam_policies"].items():
        for statement in json.loads(text)["Statement"]:
            actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
            resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
            assert statement["Effect"] == "Allow"
            assert not any(a == "*" or a.endswith(":*") for a in actions), f"{role}: wildcard action {statement}"
            if "*" in resources:
                # Only log delivery, whose APIs take no resource ARN (AWS documents Resource "*").
                assert all((a.startswith("logs:") and "Deliver" in a) or a in _LOG_DELIVERY_EXTRA for a in actions), (
                    role,
                    statement,
                )
    sm_role = (
        _client("stepfunctions")
        .describe_state_machine(stateMachineArn=deployed_stack["state_machine_arn"])["roleArn"]
        .rsplit("/", 1)[1]
    )
    (policy_name,) = iam.list_role_policies(RoleName=sm_role)["PolicyNames"]
    attached = iam.get_role_policy(RoleName=sm_role, PolicyName=policy_name)["PolicyDocument"]
    doc = json.loads(attached) if isinstance(attached, str) else attached
    assert doc == json.loads(deployed_stack["iam_policies"]["state_machine"])
    invokable = {r for s in doc["Statement"] if "lambda:InvokeFunction" in s["Action"] for r in s["Resource"]}
    assert {r.removesuffix(":*") for r in invokable} == set(deployed_stack["function_arns"].values())


_LOG_DELIVERY_EXTRA = {"logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"}


def test_log_groups_exist_with_retention(deployed_stack: dict) -> None:
    logs = _client("logs")
    for role, name in deployed_stack["log_group_names"].items():
        (group,) = [
            g for g in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"] if g["logGroupName"] == name
        ]
        assert group.get("retentionInDays") == 1, f"{role}: {group}"


def test_state_machine_runs_the_rendered_template(deployed_stack: dict) -> None:
    sfn = _client("stepfunctions")
    desc = sfn.describe_state_machine(stateMachineArn=deployed_stack["state_machine_arn"])
    template = (ROOT / "statemachine/pipeline.asl.json").read_text()
    arns = deployed_stack["function_arns"]
    expected = (
        template.replace("${init_function_arn}", arns["init"])
        .replace("${infer_function_arn}", arns["infer"])
        .replace("${summarize_function_arn}", arns["summarize"])
    )
    assert "${" not in desc["definition"]
    assert json.loads(desc["definition"]) == json.loads(expected)
    assert desc["loggingConfiguration"]["level"] == "ALL"
    assert desc["roleArn"].endswith(f"/{deployed_stack['state_machine_name']}-use1-role")


def test_ecr_repositories_are_immutable_and_scanned(deployed_stack: dict) -> None:
    ecr = _client("ecr")
    names = [url.split("/", 1)[1] for url in deployed_stack["ecr_repository_urls"].values()]
    repos = ecr.describe_repositories(repositoryNames=names)["repositories"]
    assert len(repos) == 2
    for repo in repos:
        assert repo["imageTagMutability"] == "IMMUTABLE"
        assert repo["imageScanningConfiguration"]["scanOnPush"] is True


def test_second_deploy_changes_nothing(deployed_stack: dict, stack_cli: StackCli) -> None:
    started = time.monotonic()
    proc = stack_cli.deploy()
    print(f"re-deploy took {time.monotonic() - started:.1f} s")
    assert "No changes." in proc.stdout, proc.stdout[-3000:]
    assert stack_cli.run("plan", "--detailed-exitcode", check=False).returncode == 0
    assert stack_cli.outputs() == deployed_stack


def test_logs_prints_recent_function_events(deployed_stack: dict, stack_cli: StackCli) -> None:
    logs = _client("logs")
    group = deployed_stack["log_group_names"]["infer"]
    marker = f"deploy-logs-test-{time.time_ns()}"
    logs.create_log_stream(logGroupName=group, logStreamName=marker)
    logs.put_log_events(
        logGroupName=group, logStreamName=marker, logEvents=[{"timestamp": int(time.time() * 1000), "message": marker}]
    )
    proc = stack_cli.run("exec", "--", sys.executable, "-m", "deploy.logs", "--since", "5m", "--function", "infer")
    assert any(line.endswith(marker) and " infer " in line for line in proc.stdout.splitlines()), proc.stdout


def test_destroy_without_a_deployed_stack_says_so(localstack, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "deploy.stack",
            "--endpoint",
            localstack.endpoint,
            "--state-dir",
            str(tmp_path),
            "destroy",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "scripts")},
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "nothing deployed" in proc.stdout, proc.stdout + proc.stderr
