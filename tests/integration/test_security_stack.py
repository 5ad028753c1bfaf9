"""Security of the deployed stack: IAM as created, and a payload naming code to run.

The unit suite scans the Terraform source; here the policies are read back from the
IAM service after a real `terraform apply`, and a reference-style payload whose `script`
points at real code goes through the real state machine.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from cosmicai.shards import shard_to_bytes
from itfixtures.acceptance import client, new_area, start, wait
from tests.conftest import build_shard

# Services whose actions AWS does not scope to resources: "*" is the only possible resource.
UNSCOPABLE_PREFIXES = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "xray:",
)


def _stack_role_policies(stack: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Statements of every inline and attached policy of the stack's roles, by role name."""
    iam = client("iam")
    prefix = stack["state_machine_name"].split("-")[0] + "-"
    out: dict[str, list[dict[str, Any]]] = {}
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            name = role["RoleName"]
            if not name.startswith(prefix):
                continue
            statements: list[dict[str, Any]] = []
            for pol in iam.list_role_policies(RoleName=name)["PolicyNames"]:
                doc = iam.get_role_policy(RoleName=name, PolicyName=pol)["PolicyDocument"]
                doc = json.loads(unquote(doc)) if isinstance(doc, str) else doc
                statements += doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
            for att in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
                ver = iam.get_policy(PolicyArn=att["PolicyArn"])["Policy"]["DefaultVersionId"]
                doc = iam.get_policy_version(PolicyArn=att["PolicyArn"], VersionId=ver)["PolicyVersion"]["Document"]
                doc = json.loads(unquote(doc)) if isinstance(doc, str) else doc
                statements += doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
            out[name] = statements
    return out


def _as_list(v: Any) -> list[str]:
    return v if isinstance(v, list) else [v]


def test_deployed_roles_allow_no_wildcard_actions_and_star_only_where_unscopable(
    deployed_stack: dict[str, Any],
) -> None:
    roles = _stack_role_policies(deployed_stack)
    assert len(roles) >= 4, f"expected the 3 function roles and the state machine role, got {sorted(roles)}"
    problems = []
    for role, statements in roles.items():
        assert statements, f"{role} has no policy"
        for s in statements:
            if s.get("Effect") != "Allow":
                continue
            actions, resources = _as_list(s.get("Action", [])), _as_list(s.get("Resource", []))
            if "NotAction" in s or "NotResource" in s:
                problems.append(f"{role}: NotAction/NotResource allow")
            problems += [f"{role}: wildcard action {a}" for a in actions if "*" in a]
            if "*" in resources:
                problems += [f"{role}: {a} on *" for a in actions if not a.startswith(UNSCOPABLE_PREFIXES)]
    assert problems == []


def test_deployed_buckets_are_not_public(deployed_stack: dict[str, Any]) -> None:
    s3 = client("s3")
    for bucket in (deployed_stack["data_bucket"], deployed_stack["results_bucket"]):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values()) and len(block) == 4, (bucket, block)
        for grant in s3.get_bucket_acl(Bucket=bucket)["Grants"]:
            assert "AllUsers" not in grant["Grantee"].get("URI", "") and "AuthenticatedUsers" not in grant[
                "Grantee"
            ].get("URI", ""), grant
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        for st in policy["Statement"]:
            assert not (st["Effect"] == "Allow" and st.get("Principal") in ("*", {"AWS": "*"})), st


def test_payload_naming_a_script_runs_nothing_from_it(deployed_stack: dict[str, Any]) -> None:
    """The reference downloaded `script` and exec'd it; ours ignores it, says so, and runs normally."""
    area = new_area(deployed_stack, "script")
    marker = Path(tempfile.gettempdir()) / f"cosmicai-pwned-{uuid.uuid4().hex[:8]}"
    evil = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n".encode()
    area.put("part-00000.safetensors", shard_to_bytes(build_shard(4, seed=5)))
    area.put("evil.py", evil)
    payload = {
        "data_bucket": area.data_bucket,
        "data_prefix": area.input_prefix,
        "bucket": area.results_bucket,
        "result_path": area.output_prefix,
        "script": f"s3://{area.data_bucket}/{area.input_prefix}evil.py",
        "S3_object_name": "evil",
        "object_type": "evil.py",
        "run_id": f"acc-{area.tag}",
    }
    desc = wait(start(deployed_stack, payload), timeout_s=300)
    assert desc["status"] == "SUCCEEDED", desc
    assert not marker.exists(), "a function executed the script named in the payload"
    run = area.result("run.json")
    for key in ("script", "S3_object_name", "object_type"):
        assert any(f"{key!r} ignored" in w for w in run["warnings"]), (key, run["warnings"])
    assert "evil" not in json.dumps(run["payload"])
    summary = area.result("summary.json")
    assert summary["objects"]["predicted"] == 4
    assert any("ignored" in w for w in summary["warnings"]), "the run report must show the ignored keys"
    plan = area.result("plan.json")
    assert [s["key"] for item in plan for s in item["shards"]] == [f"{area.input_prefix}part-00000.safetensors"]
