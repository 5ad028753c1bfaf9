"""make preflight: each check's decision, driven by botocore's Stubber or plain fakes (no cloud, no engine)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from deploy import preflight  # noqa: E402
from deploy.preflight import Check, Reservations  # noqa: E402
from deploy.regions import LOCAL_DEFAULT_REGION, RegionError, resolve_region  # noqa: E402


def _client(service: str) -> Any:
    return boto3.client(service, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


def _state(tmp_path: Path, region: str | None) -> Path:
    state = tmp_path / "terraform.tfstate"
    if region:
        state.write_text(json.dumps({"version": 4, "outputs": {"region": {"value": region, "type": "string"}}}))
    return state


# ---- region ------------------------------------------------------------------------

FULL_ENV = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-2"}


@pytest.mark.parametrize(
    ("explicit", "env", "profile", "expected", "source"),
    [
        ("ap-south-1", FULL_ENV, "us-west-2", "ap-south-1", "--region"),
        ("", FULL_ENV, "us-west-2", "eu-west-1", "AWS_REGION"),
        ("", {"AWS_DEFAULT_REGION": "eu-west-2"}, "us-west-2", "eu-west-2", "AWS_DEFAULT_REGION"),
        ("", {}, "us-west-2", "us-west-2", "profile 'default'"),
        ("", {"AWS_PROFILE": "work"}, "us-west-2", "us-west-2", "profile 'work'"),
    ],
)
def test_region_resolution_order_for_aws(explicit: str, env: dict, profile: str, expected: str, source: str) -> None:
    resolved = resolve_region("aws", explicit, env, lambda: profile)
    assert resolved.region == expected
    assert resolved.source.startswith(source)


def test_aws_without_any_region_fails_and_says_how_to_set_one() -> None:
    with pytest.raises(RegionError, match="TARGET=aws has no region") as exc:
        resolve_region("aws", "", {}, lambda: None)
    assert "export AWS_REGION=" in exc.value.fix


def test_only_the_local_cloud_falls_back_to_us_east_1_and_it_ignores_the_profile() -> None:
    assert resolve_region("local", "", {}, lambda: "ap-northeast-1").region == LOCAL_DEFAULT_REGION == "us-east-1"
    assert resolve_region("local", "", {"AWS_DEFAULT_REGION": "eu-west-2"}, lambda: None).region == "eu-west-2"


def test_a_malformed_region_is_named_with_its_source() -> None:
    with pytest.raises(RegionError, match="AWS_DEFAULT_REGION = 'Frankfurt' is not a region name"):
        resolve_region("aws", "", {"AWS_DEFAULT_REGION": "Frankfurt"}, lambda: None)


def test_region_check_passes_warns_and_fails(tmp_path: Path) -> None:
    check, resolved = preflight.check_region(
        "aws", "", {"AWS_DEFAULT_REGION": "eu-west-2"}, lambda: None, _state(tmp_path, None)
    )
    assert (check.status, resolved.region) == ("PASS", "eu-west-2") and "AWS_DEFAULT_REGION" in check.detail
    check, _ = preflight.check_region("aws", "", FULL_ENV, lambda: None, _state(tmp_path, None))
    assert check.status == "WARN" and "eu-west-2" in check.detail
    check, _ = preflight.check_region(
        "aws", "", {"AWS_REGION": "eu-west-1"}, lambda: None, _state(tmp_path, "us-east-1")
    )
    assert check.status == "FAIL" and "AWS_REGION=us-east-1" in check.fix
    check, resolved = preflight.check_region("aws", "", {}, lambda: None, _state(tmp_path, None))
    assert check.status == "FAIL" and resolved is None


# ---- credentials ----------------------------------------------------------------------


def test_credentials_pass_with_the_identity_and_fail_with_the_fix() -> None:
    sts = _client("sts")
    with Stubber(sts) as stub:
        stub.add_response(
            "get_caller_identity",
            {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/me", "UserId": "AIDA"},
        )
        stub.add_client_error(
            "get_caller_identity", "ExpiredToken", "The security token included in the request is expired"
        )
        ok = preflight.check_credentials(sts, "aws")
        bad = preflight.check_credentials(sts, "aws")
    assert ok.status == "PASS" and "123456789012" in ok.detail
    assert bad.status == "FAIL" and "ExpiredToken" in bad.detail and "aws sso login" in bad.fix


# ---- Lambda concurrency ---------------------------------------------------------------

NAMES = {"c-infer": -1, "c-init": -1, "c-summarize": -1}


def _account(limit: int, unreserved: int) -> dict[str, int]:
    return {"ConcurrentExecutions": limit, "UnreservedConcurrentExecutions": unreserved}


def test_concurrency_fails_when_the_account_runs_fewer_than_max_concurrency() -> None:
    # A new account's limit of 10 against the payload default of 100.
    checks = preflight.check_lambda_concurrency(_account(10, 10), 100, Reservations(NAMES), {}, "c-infer")
    assert checks[0].status == "FAIL" and "at most 10" in checks[0].detail and "L-B99A9384" in checks[0].fix


def test_concurrency_passes_when_the_account_runs_max_concurrency() -> None:
    checks = preflight.check_lambda_concurrency(_account(1000, 1000), 100, Reservations(NAMES), {}, "c-infer")
    assert [c.status for c in checks] == ["PASS", "PASS"]


def test_reservations_must_leave_ten_unreserved() -> None:
    planned = Reservations({"c-infer": 95, "c-init": -1, "c-summarize": -1})
    checks = preflight.check_lambda_concurrency(_account(100, 100), 100, planned, {}, "c-infer")
    assert checks[1].status == "FAIL" and "leaving 5 unreserved" in checks[1].detail
    # A redeploy: what the stack already reserves is given back before the new reservation counts.
    checks = preflight.check_lambda_concurrency(_account(1000, 905), 100, planned, {"c-infer": 95}, "c-infer")
    assert checks[1].status == "WARN"  # 95 < max_concurrency 100, not a FAIL: 1000 - 95 left


def test_small_or_zero_reservations_are_named() -> None:
    checks = preflight.check_lambda_concurrency(
        _account(1000, 1000), 100, Reservations({"c-infer": 50, "c-init": -1, "c-summarize": -1}), {}, "c-infer"
    )
    assert checks[1].status == "WARN" and "max_concurrency <= 50" in checks[1].fix
    checks = preflight.check_lambda_concurrency(
        _account(1000, 1000), 100, Reservations({"c-infer": -1, "c-init": 0, "c-summarize": 0}), {}, "c-infer"
    )
    assert checks[1].status == "FAIL" and "could never run" in checks[1].detail


def test_unreserved_infer_competing_for_too_little_is_a_warning() -> None:
    checks = preflight.check_lambda_concurrency(_account(1000, 60), 100, Reservations(NAMES), {}, "c-infer")
    assert [c.status for c in checks] == ["PASS", "WARN"]


def test_current_reservations_read_from_lambda() -> None:
    lam = _client("lambda")
    with Stubber(lam) as stub:
        stub.add_response("get_function_concurrency", {"ReservedConcurrentExecutions": 40}, {"FunctionName": "c-infer"})
        stub.add_response("get_function_concurrency", {}, {"FunctionName": "c-init"})
        stub.add_client_error(
            "get_function_concurrency", "ResourceNotFoundException", expected_params={"FunctionName": "c-summarize"}
        )
        assert preflight.current_reservations(lam, ["c-infer", "c-init", "c-summarize"]) == {
            "c-infer": 40,
            "c-init": 0,
            "c-summarize": 0,
        }


class FakeTarget:
    """A deploy target whose clients are the stubbed ones given."""

    def __init__(self, clients: dict[str, Any], is_local: bool = False) -> None:
        self.clients = clients
        self.is_local = is_local
        self.region = "eu-west-1"

    def client(self, service: str) -> Any:
        return self.clients[service]

    def check_reachable(self) -> str:
        return "LocalStack at http://x"


def _ctx(tmp_path: Path, target: FakeTarget, plan_lines: list[str] | None = None, **settings: Any) -> preflight.Context:
    def plan(_target: Any) -> list[str]:
        if plan_lines is None:
            raise preflight.DeployError("terraform not installed")
        return plan_lines

    return preflight.Context(
        target="aws",
        explicit_region="eu-west-1",
        endpoint="",
        state_file=tmp_path / "terraform.tfstate",
        settings={
            "name_prefix": "c",
            "infer_reserved_concurrency": -1,
            "orchestration_reserved_concurrency": -1,
            "log_retention_days": 14,
            "ecr_keep_images": 10,
            **settings,
        },
        uses_images=False,
        base_image="python:3.11-slim",
        runtime_image="python:3.11-slim",
        wheel_source="wheelhouse",
        make_target=lambda region: target,
        plan=plan,
        environ={},
    )


def _stubbed_account(limit: int) -> tuple[dict[str, Any], list[Stubber]]:
    sts, lam, sfn, quotas = _client("sts"), _client("lambda"), _client("stepfunctions"), _client("service-quotas")
    stubs = [Stubber(c) for c in (sts, lam, sfn, quotas)]
    stubs[0].add_response(
        "get_caller_identity", {"Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/me", "UserId": "A"}
    )
    stubs[1].add_response("get_account_settings", {"AccountLimit": _account(limit, limit)})
    for name in ("c-infer", "c-init", "c-summarize"):
        stubs[1].add_client_error(
            "get_function_concurrency", "ResourceNotFoundException", expected_params={"FunctionName": name}
        )
    stubs[3].add_client_error("list_service_quotas", "AccessDeniedException")
    stubs[2].add_response("list_state_machines", {"stateMachines": []})
    for s in stubs:
        s.activate()
    return {"sts": sts, "lambda": lam, "stepfunctions": sfn, "service-quotas": quotas}, stubs


def test_preflight_exits_non_zero_when_the_account_cannot_run_the_default_fan_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clients, stubs = _stubbed_account(limit=10)
    lines: list[str] = []
    rc = preflight.main(_ctx(tmp_path, FakeTarget(clients)), out=lines.append)
    text = "\n".join(lines)
    assert rc == 1
    assert "FAIL  lambda concurrency" in text and "max_concurrency is 100" in text
    assert (
        "(no terraform plan: terraform not installed" in text
        and "module.infer_function.aws_lambda_function.this" in text
    )
    for s in stubs:
        s.assert_no_pending_responses()


def test_preflight_passes_on_a_ready_account_and_prints_the_plan_and_idle_cost(tmp_path: Path) -> None:
    clients, _ = _stubbed_account(limit=1000)
    plan = [
        json.dumps(
            {
                "type": "planned_change",
                "change": {"action": "create", "resource": {"addr": 'module.ecr.aws_ecr_repository.this["inference"]'}},
            }
        ),
        json.dumps({"type": "version", "terraform": "1.11.4"}),
    ]
    lines: list[str] = []
    rc = preflight.main(_ctx(tmp_path, FakeTarget(clients), plan_lines=plan), out=lines.append)
    text = "\n".join(lines)
    assert rc == 0, text
    assert 'create   module.ecr.aws_ecr_repository.this["inference"]' in text and "1 to create" in text
    assert "idle monthly cost" in text and "$0.1/GB-month" in text
    assert "state machines" in text and "documented default" in text


def test_preflight_skips_the_cloud_checks_when_credentials_fail(tmp_path: Path) -> None:
    sts = _client("sts")
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", "InvalidClientTokenId")
        checks, target = preflight.run_checks(_ctx(tmp_path, FakeTarget({"sts": sts})))
    assert target is None
    assert [(c.name, c.status) for c in checks if c.status in ("FAIL", "SKIP")] == [
        ("credentials", "FAIL"),
        ("docker", "SKIP"),
        ("lambda concurrency", "SKIP"),
        ("step functions", "SKIP"),
    ]


# ---- Step Functions --------------------------------------------------------------------


def test_service_quota_found_by_name_or_none() -> None:
    quotas = _client("service-quotas")
    with Stubber(quotas) as stub:
        stub.add_response(
            "list_service_quotas",
            {
                "Quotas": [
                    {"QuotaName": "Maximum number of registered state machines", "Value": 25000.0, "QuotaCode": "L-1"}
                ]
            },
        )
        stub.add_client_error("list_service_quotas", "AccessDeniedException")
        assert preflight.service_quota(quotas, "states", ("registered", "state machines")) == 25000.0
        assert preflight.service_quota(quotas, "states", ("registered", "state machines")) is None


def test_step_functions_room_and_map_limit() -> None:
    sfn = _client("stepfunctions")
    listing = {
        "stateMachines": [
            {
                "stateMachineArn": f"arn:aws:states:eu-west-1:1:stateMachine:m{i}",
                "name": f"m{i}",
                "type": "STANDARD",
                "creationDate": "2026-01-01T00:00:00Z",
            }
            for i in range(2)
        ]
    }
    with Stubber(sfn) as stub:
        stub.add_response("list_state_machines", listing)
        stub.add_response("list_state_machines", listing)
        ok = preflight.check_step_functions(sfn, None, "c-pipeline", 100, 10_000)
        full = preflight.check_step_functions(sfn, 2.0, "c-pipeline", 100, 10_000)
    assert [c.status for c in ok] == ["PASS", "PASS"] and "documented default" in ok[0].detail
    assert full[0].status == "FAIL" and "3 with this stack's, quota 2 (Service Quotas)" in full[0].detail


def test_distributed_map_limit_above_the_documented_children_warns() -> None:
    sfn = _client("stepfunctions")
    with Stubber(sfn) as stub:
        stub.add_response("list_state_machines", {"stateMachines": []})
        checks = preflight.check_step_functions(sfn, None, "c-pipeline", 100, 20_000)
    assert checks[-1].status == "WARN" and "10000" in checks[-1].detail


# ---- Docker, base image, wheels --------------------------------------------------------


class FakeImage:
    def __init__(self, arch: str) -> None:
        self.attrs = {"Architecture": arch, "Size": 130e6}


class FakeRegistryData:
    def __init__(self, platforms: set[str]) -> None:
        self.platforms = platforms

    def has_platform(self, platform: str) -> bool:
        return platform in self.platforms


class FakeImages:
    def __init__(self, local: dict[str, str], registry: dict[str, set[str]] | Exception) -> None:
        self.local, self.registry, self.asked = local, registry, []

    def get(self, ref: str) -> FakeImage:
        from docker.errors import ImageNotFound

        if ref not in self.local:
            raise ImageNotFound(ref)
        return FakeImage(self.local[ref])

    def get_registry_data(self, ref: str) -> FakeRegistryData:
        self.asked.append(ref)
        if isinstance(self.registry, Exception):
            raise self.registry
        return FakeRegistryData(self.registry.get(ref, set()))


class FakeDocker:
    def __init__(
        self,
        arch: str = "x86_64",
        local: dict[str, str] | None = None,
        registry: dict[str, set[str]] | Exception | None = None,
    ) -> None:
        self.arch = arch
        self.images = FakeImages(local or {}, registry if registry is not None else {})

    def info(self) -> dict[str, str]:
        return {"Architecture": self.arch, "ServerVersion": "27.0"}


def test_docker_unreachable_fails_and_a_foreign_platform_warns() -> None:
    def refuse() -> Any:
        raise RuntimeError("no Docker engine answers")

    check, client = preflight.check_docker(refuse, "linux/amd64")
    assert check.status == "FAIL" and client is None and "DOCKER_HOST" in check.fix
    # An Apple-silicon laptop building x86_64 functions.
    check, _ = preflight.check_docker(lambda: FakeDocker("aarch64"), "linux/amd64")
    assert check.status == "WARN" and "emulation" in check.detail
    assert preflight.check_docker(lambda: FakeDocker("x86_64"), "linux/amd64")[0].status == "PASS"


def test_public_base_image_decisions() -> None:
    def check(client: FakeDocker, base: str = "python:3.11-slim", runtime: str = "python:3.11-slim") -> Check:
        return preflight.check_base_image(client, base, runtime, "linux/amd64", is_root=False, has_debootstrap=False)

    local = FakeDocker(local={"python:3.11-slim": "amd64"})
    assert check(local).status == "PASS" and local.images.asked == []
    # Present locally for arm64 only: the registry must offer amd64.
    assert (
        check(FakeDocker("aarch64", {"python:3.11-slim": "arm64"}, {"python:3.11-slim": {"linux/amd64"}})).status
        == "PASS"
    )
    assert check(FakeDocker(registry={"python:3.11-slim": {"linux/arm64"}})).status == "FAIL"
    offline = check(FakeDocker(registry=RuntimeError("no such host")))
    assert offline.status == "FAIL" and "docker pull --platform linux/amd64" in offline.fix
    assert check(FakeDocker(), runtime="cosmicai-base:bookworm-runtime").status == "FAIL"


def test_own_base_image_decisions() -> None:
    def check(client: FakeDocker, *, root: bool, debootstrap: bool) -> Check:
        return preflight.check_base_image(
            client,
            "cosmicai-base:bookworm",
            "cosmicai-base:bookworm-runtime",
            "linux/amd64",
            is_root=root,
            has_debootstrap=debootstrap,
        )

    built = {"cosmicai-base:bookworm": "amd64", "cosmicai-base:bookworm-runtime": "amd64"}
    assert check(FakeDocker(local=built), root=False, debootstrap=False).status == "PASS"
    assert check(FakeDocker(), root=True, debootstrap=True).status == "PASS"
    laptop = check(FakeDocker(), root=False, debootstrap=False)
    assert laptop.status == "FAIL" and "BASE_IMAGE=python:3.11-slim" in laptop.fix
    foreign = check(FakeDocker("aarch64", local=built), root=True, debootstrap=True)
    assert foreign.status == "FAIL" and "linux/amd64" in foreign.detail


def test_wheel_source_decisions(tmp_path: Path) -> None:
    wheelhouse, links = tmp_path / "wheelhouse", tmp_path / "links"
    wheelhouse.mkdir()
    links.mkdir()
    pin = "torch==2.13.0+cpu"
    never = lambda url: False  # noqa: E731

    def check(
        machine: str, reachable: Any = never, source: str = "wheelhouse", index: str = preflight_index()
    ) -> Check:
        return preflight.check_wheel_source(source, pin, machine, wheelhouse, index, reachable, [links])

    assert check("x86_64").status == "FAIL"
    (links / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").touch()
    assert check("x86_64").status == "PASS"
    # The x86_64 wheel does not serve arm64 functions.
    failed = check("aarch64")
    assert failed.status == "FAIL" and "TORCH_INDEX_URL" in failed.detail
    assert check("aarch64", reachable=lambda url: True).status == "PASS"
    assert check("x86_64", source="index").status == "FAIL"
    assert check("x86_64", source="index", reachable=lambda url: True).status == "PASS"
    assert preflight.check_wheel_source("wheelhouse", None, "x86_64", wheelhouse, "", never, []).status == "FAIL"


def preflight_index() -> str:
    return "https://download.pytorch.org/whl/cpu"


# ---- plan and cost ---------------------------------------------------------------------


def test_planned_changes_and_the_fallback_resource_list() -> None:
    lines = [
        "not json",
        json.dumps({"type": "planned_change", "change": {"action": "create", "resource": {"addr": "a.b"}}}),
        json.dumps({"type": "change_summary", "changes": {"add": 1}}),
    ]
    assert preflight.planned_changes(lines) == [("create", "a.b")]
    declared = preflight.module_resources(Path(__file__).resolve().parents[2] / "terraform")
    assert "module.state_machine.aws_sfn_state_machine.this" in declared
    assert "module.ecr.aws_ecr_repository.this" in declared


def test_idle_cost_counts_storage_only() -> None:
    cost = preflight.idle_cost({"inference": 755.0, "orchestration": 239.0}, 10, None, 14)
    assert cost.total_usd == pytest.approx(0.10, abs=0.005)  # 0.994 GB x $0.10
    assert any(line.startswith("Lambda, Step Functions: nothing") for line in cost.lines)
    with_data = preflight.idle_cost({"inference": 755.0, "orchestration": 239.0}, 10, 100.0, 14)
    assert with_data.total_usd == pytest.approx(0.0994 + 2.3, abs=0.01)


def test_bucket_size_from_cloudwatch() -> None:
    cw = _client("cloudwatch")
    with Stubber(cw) as stub:
        import datetime as dt

        t = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
        stub.add_response(
            "get_metric_statistics",
            {"Datapoints": [{"Timestamp": t, "Average": 2e9}, {"Timestamp": t - dt.timedelta(days=1), "Average": 1e9}]},
        )
        stub.add_response("get_metric_statistics", {"Datapoints": []})
        assert preflight.bucket_size_gb(cw, ["data", "results"]) == pytest.approx(2.0)
        stub.add_client_error("get_metric_statistics", "AccessDenied")
        assert preflight.bucket_size_gb(cw, ["data"]) is None
