"""`make preflight TARGET=aws|local`: what a first `make deploy` needs, checked without changing anything.

Each check prints PASS, WARN or FAIL (SKIP when it does not apply to this target or
cannot run because an earlier check failed) and, unless it passed, how to fix it. Then
what `make deploy` would create (from `terraform plan`, else the module's resource list)
and what the stack costs while idle. The exit code is 1 when any check FAILed.

Every decision is a function of plain values or of a client (boto3, docker) passed in,
so tests/unit/test_deploy_preflight.py drives each one with botocore's Stubber or fakes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import DeployError
from .regions import RegionError, ResolvedRegion, check_same_region, resolve_region
from .tfvars import Settings

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_service_quotas import ServiceQuotasClient
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_sts import STSClient

    from .targets import Target

Status = Literal["PASS", "WARN", "FAIL", "SKIP"]
ROOT = Path(__file__).resolve().parents[2]

# AWS keeps at least this many concurrent executions unreserved per account and region
# (PutFunctionConcurrency fails below it).
MIN_UNRESERVED = 10
LAMBDA_QUOTA_HINT = (
    "request more in Service Quotas (AWS Lambda > Concurrent executions, L-B99A9384) "
    "or run with a smaller payload max_concurrency"
)
SFN_QUOTAS_URL = "https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html"
DISTRIBUTED_MAP_URL = "https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html"
# Documented defaults, used when Service Quotas does not answer (no permission, local cloud).
DOCUMENTED_STATE_MACHINES = 10_000  # "Maximum number of registered state machines" (older accounts; newer get more)
DOCUMENTED_MAP_CHILDREN = 10_000  # parallel child workflow executions of one Distributed Map

# us-east-1 list prices (USD), the ones that accrue while nothing runs.
ECR_GB_MONTH = 0.10
S3_GB_MONTH = 0.023
LOGS_GB_MONTH = 0.03
PRICES_URL = "https://aws.amazon.com/ecr/pricing/, https://aws.amazon.com/s3/pricing/, https://aws.amazon.com/cloudwatch/pricing/"


@dataclass(frozen=True)
class Check:
    """One check's verdict; `fix` says what to do unless it passed."""

    name: str
    status: Status
    detail: str
    fix: str = ""


# ---- region and credentials ------------------------------------------------------


def check_region(
    target: str, explicit: str, environ: Mapping[str, str], profile: Callable[[], str | None], state_file: Path
) -> tuple[Check, ResolvedRegion | None]:
    """The region by deploy.regions' order, and whether it agrees with a deployed stack's."""
    try:
        resolved = resolve_region(target, explicit, environ, profile)
    except RegionError as exc:
        return Check("region", "FAIL", exc.what, exc.fix), None
    try:
        check_same_region(resolved, state_file, target)
    except RegionError as exc:
        return Check("region", "FAIL", exc.what, exc.fix), resolved
    env_region, default_region = environ.get("AWS_REGION"), environ.get("AWS_DEFAULT_REGION")
    if env_region and default_region and env_region != default_region and resolved.source == "AWS_REGION":
        return Check(
            "region",
            "WARN",
            f"{resolved.region} (from AWS_REGION); AWS_DEFAULT_REGION says {default_region}",
            "the AWS CLI and older tools read AWS_DEFAULT_REGION: set both alike",
        ), resolved
    return Check("region", "PASS", f"{resolved.region} (from {resolved.source})"), resolved


def check_credentials(sts: STSClient, target: str) -> Check:
    """STS GetCallerIdentity: who `make deploy` would act as."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        ident = sts.get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        fix = (
            "configure the standard chain: `aws configure`, `aws sso login --profile X` with AWS_PROFILE=X, "
            "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
            if target == "aws"
            else "`make localstack-up`"
        )
        return Check("credentials", "FAIL", f"sts get-caller-identity failed: {exc}", fix)
    return Check("credentials", "PASS", f"account {ident['Account']} as {ident['Arn']}")


# ---- docker, base image, wheels ---------------------------------------------------

_ENGINE_PLATFORMS = {"x86_64": "linux/amd64", "amd64": "linux/amd64", "aarch64": "linux/arm64", "arm64": "linux/arm64"}


def engine_platform(info: Mapping[str, Any]) -> str:
    """docker info's Architecture as a docker platform."""
    return _ENGINE_PLATFORMS.get(str(info.get("Architecture", "")), f"linux/{info.get('Architecture', '?')}")


def check_docker(connect: Callable[[], Any], platform: str) -> tuple[Check, Any]:
    """A Docker engine answers; building another platform than its own needs emulation."""
    try:
        client = connect()
        info = client.info()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the engine is this check's FAIL
        return Check(
            "docker",
            "FAIL",
            f"no Docker engine answers: {exc}",
            "start Docker (Docker Desktop, `systemctl start docker`), or `make docker-up` as root, "
            "or point DOCKER_HOST at one",
        ), None
    own = engine_platform(info)
    detail = f"engine {info.get('ServerVersion', '?')} on {own}"
    if own != platform:
        return Check(
            "docker",
            "WARN",
            f"{detail}; the functions need {platform}, built under emulation (slower)",
            "Docker Desktop emulates it already; elsewhere install binfmt/qemu "
            f"(`docker run --privileged --rm tonistiigi/binfmt --install {platform.split('/')[1]}`)",
        ), client
    return Check("docker", "PASS", detail), client


def check_base_image(
    client: Any, base: str, runtime: str, platform: str, *, is_root: bool, has_debootstrap: bool
) -> Check:
    """BASE_IMAGE (and RUNTIME_IMAGE) can be had for the functions' platform."""
    own = base.startswith("cosmicai-base:")
    if own != runtime.startswith("cosmicai-base:"):
        return Check(
            "base image",
            "FAIL",
            f"BASE_IMAGE={base} with RUNTIME_IMAGE={runtime}: their Pythons differ",
            "use one family: BASE_IMAGE=python:3.11-slim with RUNTIME_IMAGE unset, or our cosmicai-base",
        )
    if own:
        engine = engine_platform(client.info())
        if engine != platform:
            return Check(
                "base image",
                "FAIL",
                f"{base} (debootstrap) exists only for this engine's {engine}, the functions need {platform}",
                "make deploy TARGET=aws BASE_IMAGE=python:3.11-slim",
            )
        if _local_image_arch(client, base) and _local_image_arch(client, runtime):
            return Check("base image", "PASS", f"{base} and {runtime} are built")
        if is_root and has_debootstrap:
            return Check(
                "base image", "PASS", f"{base} will be built by debootstrap (root, about 90 s, needs deb.debian.org)"
            )
        return Check(
            "base image",
            "FAIL",
            f"{base} is not built and building it needs root and debootstrap",
            "use the public base: BASE_IMAGE=python:3.11-slim (the TARGET=aws default)",
        )
    for ref in dict.fromkeys((base, runtime)):
        arch = _local_image_arch(client, ref)
        if arch == platform.split("/", 1)[1]:
            continue
        try:
            data = client.images.get_registry_data(ref)
        except Exception as exc:  # noqa: BLE001 - registry, auth and network failures alike
            return Check(
                "base image",
                "FAIL",
                f"{ref} is not local and its registry does not answer: {exc}",
                f"`docker pull --platform {platform} {ref}` (or `docker login`), or choose another BASE_IMAGE",
            )
        if not data.has_platform(platform):
            return Check(
                "base image",
                "FAIL",
                f"{ref} has no {platform} variant",
                "choose a multi-platform base such as python:3.11-slim",
            )
    return Check(
        "base image",
        "PASS",
        f"{base} is available for {platform}" + (f" (final stage {runtime})" if runtime != base else ""),
    )


def _local_image_arch(client: Any, ref: str) -> str | None:
    """The architecture of a local image, None when it is absent."""
    from docker.errors import ImageNotFound

    try:
        return str(client.images.get(ref).attrs.get("Architecture"))
    except ImageNotFound:
        return None


def check_wheel_source(
    wheel_source: str,
    torch_pin: str | None,
    machine: str,
    wheelhouse: Path,
    torch_index: str,
    reachable: Callable[[str], bool],
    find_links: Iterable[Path],
    pip_index: str = "https://pypi.org/simple",
) -> Check:
    """The CPU torch wheel (the one wheel that decides CUDA or not) can be had, and from where."""
    if torch_pin is None:
        return Check("wheel source", "FAIL", "requirements/lock.txt pins no torch", "restore the torch pin in the lock")
    version = torch_pin.split("==", 1)[1]
    pattern = re.compile(rf"^torch-{re.escape(version)}-cp311-cp311-(manylinux|linux)_.*{machine}\.whl$")
    if wheel_source == "index":
        missing = [u for u in (pip_index, torch_index) if not u or not reachable(u)]
        if missing:
            return Check(
                "wheel source",
                "FAIL",
                f"WHEEL_SOURCE=index installs inside the build, but {missing} do not answer",
                "WHEEL_SOURCE=wheelhouse (host pip, its mirrors and find-links) or a reachable TORCH_INDEX_URL",
            )
        return Check("wheel source", "PASS", f"index: {pip_index} + {torch_index} ({torch_pin})")
    for folder in [wheelhouse, *find_links]:
        if folder.is_dir() and any(pattern.match(p.name) for p in folder.iterdir()):
            return Check("wheel source", "PASS", f"wheelhouse: {torch_pin} for {machine} in {folder}")
    if torch_index and reachable(torch_index):
        return Check("wheel source", "PASS", f"wheelhouse: {torch_pin} for {machine} from {torch_index}")
    return Check(
        "wheel source",
        "FAIL",
        f"no source of {torch_pin} for {machine}: not in {wheelhouse} or pip's "
        f"find-links, and TORCH_INDEX_URL={torch_index or '(empty)'} does not answer",
        "network to https://download.pytorch.org/whl/cpu, a mirror in TORCH_INDEX_URL, "
        "or the wheel in a find-links folder",
    )


# ---- Lambda and Step Functions quotas --------------------------------------------


@dataclass(frozen=True)
class Reservations:
    """Reserved concurrency per function name as the tfvars set it (-1 = unreserved)."""

    by_function: dict[str, int] = field(default_factory=dict)

    @property
    def reserved(self) -> dict[str, int]:
        return {name: n for name, n in self.by_function.items() if n >= 0}


def current_reservations(lam: LambdaClient, names: Iterable[str]) -> dict[str, int]:
    """What the stack's functions reserve now (0 for absent or unreserved functions)."""
    from botocore.exceptions import ClientError

    out: dict[str, int] = {}
    for name in names:
        try:
            out[name] = int(lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions", 0))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            out[name] = 0
    return out


def check_lambda_concurrency(
    account: Mapping[str, Any],
    max_concurrency: int,
    planned: Reservations,
    current: Mapping[str, int],
    infer_function: str,
) -> list[Check]:
    """The account's concurrency against the payload's default fan-out and the stack's reservations.

    `account` is GetAccountSettings' AccountLimit. A run starts up to max_concurrency
    Infer workers at once; an account that cannot run that many throttles the Map.
    """
    limit = int(account["ConcurrentExecutions"])
    unreserved = int(account["UnreservedConcurrentExecutions"])
    checks: list[Check] = []
    if limit < max_concurrency:
        checks.append(
            Check(
                "lambda concurrency",
                "FAIL",
                f"the account runs at most {limit} functions at once; a run's default max_concurrency "
                f"is {max_concurrency}",
                LAMBDA_QUOTA_HINT + f" (<= {max(limit - MIN_UNRESERVED, 1)})",
            )
        )
    else:
        checks.append(
            Check(
                "lambda concurrency",
                "PASS",
                f"account limit {limit} >= the payload default max_concurrency {max_concurrency}",
            )
        )
    reserved = planned.reserved
    after = unreserved + sum(current.get(n, 0) for n in reserved) - sum(reserved.values())
    zero = sorted(n for n, r in reserved.items() if r == 0)
    if zero:
        checks.append(
            Check(
                "reserved concurrency",
                "FAIL",
                f"{', '.join(zero)} reserve 0: they could never run",
                "set infer_reserved_concurrency / orchestration_reserved_concurrency to -1 or >= 1",
            )
        )
    elif after < MIN_UNRESERVED:
        checks.append(
            Check(
                "reserved concurrency",
                "FAIL",
                f"the stack reserves {sum(reserved.values())}, leaving {after} unreserved; AWS keeps at "
                f"least {MIN_UNRESERVED} (now unreserved: {unreserved})",
                "lower infer_reserved_concurrency / orchestration_reserved_concurrency, or raise the account limit",
            )
        )
    elif 0 < reserved.get(infer_function, max_concurrency) < max_concurrency:
        checks.append(
            Check(
                "reserved concurrency",
                "WARN",
                f"{infer_function} reserves {reserved[infer_function]} < max_concurrency {max_concurrency}: "
                "the Map's extra workers are throttled and retried (slower, nothing lost)",
                f"pass max_concurrency <= {reserved[infer_function]} in payloads, or raise infer_reserved_concurrency",
            )
        )
    elif infer_function not in reserved and after < max_concurrency:
        checks.append(
            Check(
                "reserved concurrency",
                "WARN",
                f"{after} unreserved left for {infer_function} (unreserved) < max_concurrency {max_concurrency}: "
                "workers beyond it are throttled and retried",
                LAMBDA_QUOTA_HINT,
            )
        )
    else:
        checks.append(
            Check(
                "reserved concurrency",
                "PASS",
                f"{after} unreserved left after the stack's reservations ({sum(reserved.values())}), "
                f">= {MIN_UNRESERVED}",
            )
        )
    return checks


def service_quota(quotas: ServiceQuotasClient, service_code: str, name_words: tuple[str, ...]) -> float | None:
    """An applied quota's value by the words in its name (Service Quotas), None when unavailable."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        for page in quotas.get_paginator("list_service_quotas").paginate(ServiceCode=service_code):
            for quota in page.get("Quotas", []):
                name = str(quota.get("QuotaName", "")).lower()
                if all(w in name for w in name_words):
                    return float(quota["Value"])
    except (BotoCoreError, ClientError, KeyError):
        return None
    return None


def check_step_functions(
    sfn: SFNClient,
    quota_state_machines: float | None,
    state_machine_name: str,
    max_concurrency: int,
    max_concurrency_limit: int,
) -> list[Check]:
    """Room for one more state machine, and the Map's fan-out within Distributed Map's limit."""
    from botocore.exceptions import BotoCoreError, ClientError

    checks: list[Check] = []
    source = "Service Quotas" if quota_state_machines is not None else f"documented default, {SFN_QUOTAS_URL}"
    quota = int(quota_state_machines if quota_state_machines is not None else DOCUMENTED_STATE_MACHINES)
    try:
        names = [
            m["name"]
            for page in sfn.get_paginator("list_state_machines").paginate()
            for m in page.get("stateMachines", [])
        ]
    except (BotoCoreError, ClientError) as exc:
        checks.append(
            Check(
                "state machines",
                "WARN",
                f"cannot list state machines: {exc}",
                "grant states:ListStateMachines to see the count",
            )
        )
    else:
        needed = len(names) + (0 if state_machine_name in names else 1)
        status: Status = "PASS" if needed <= quota else "FAIL"
        checks.append(
            Check(
                "state machines",
                status,
                f"{needed} with this stack's, quota {quota} ({source})",
                "" if status == "PASS" else "delete unused state machines or request a higher quota",
            )
        )
    if max_concurrency_limit > DOCUMENTED_MAP_CHILDREN:
        checks.append(
            Check(
                "distributed map",
                "WARN",
                f"payloads may ask max_concurrency {max_concurrency_limit} > {DOCUMENTED_MAP_CHILDREN} "
                f"parallel child executions ({DISTRIBUTED_MAP_URL})",
                "cap max_concurrency at 10,000",
            )
        )
    else:
        checks.append(
            Check(
                "distributed map",
                "PASS",
                f"default max_concurrency {max_concurrency}, at most {max_concurrency_limit} <= "
                f"{DOCUMENTED_MAP_CHILDREN} parallel child executions (documented, no API; {DISTRIBUTED_MAP_URL})",
            )
        )
    return checks


# ---- what deploy would create, and what it costs idle ----------------------------


def planned_changes(plan_json_lines: Iterable[str]) -> list[tuple[str, str]]:
    """(action, resource address) from `terraform plan -json`'s planned_change messages."""
    out = []
    for line in plan_json_lines:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("type") == "planned_change":
            change = msg.get("change", {})
            out.append((str(change.get("action")), str(change.get("resource", {}).get("addr"))))
    return out


_RESOURCE_RE = re.compile(r'^resource\s+"(\w+)"\s+"(\w+)"', re.M)
_MODULE_RE = re.compile(r'^module\s+"(\w+)"\s*\{[^}]*?source\s*=\s*"([^"]+)"', re.M | re.S)


def module_resources(tf_dir: Path) -> list[str]:
    """The resources the configuration declares, per module call (the fallback without a plan)."""

    def declared(folder: Path) -> list[str]:
        return [f"{t}.{n}" for f in sorted(folder.glob("*.tf")) for t, n in _RESOURCE_RE.findall(f.read_text())]

    out = [f"{r}" for r in declared(tf_dir)]
    for f in sorted(tf_dir.glob("*.tf")):
        for name, source in _MODULE_RE.findall(f.read_text()):
            out += [f"module.{name}.{r}" for r in declared((tf_dir / source).resolve())]
    return out


@dataclass(frozen=True)
class IdleCost:
    """Monthly cost of a deployed stack that runs nothing."""

    lines: list[str]
    total_usd: float


def idle_cost(
    image_mb: Mapping[str, float], keep_images: int, stored_s3_gb: float | None, log_retention_days: int
) -> IdleCost:
    """ECR, S3 and CloudWatch Logs storage; Lambda and Step Functions bill per run only."""
    ecr_gb = sum(image_mb.values()) / 1000
    ecr = ecr_gb * ECR_GB_MONTH
    s3 = (stored_s3_gb or 0.0) * S3_GB_MONTH
    lines = [
        f"ECR: {ecr_gb:.2f} GB for the two images ({', '.join(f'{k} {v:.0f} MB' for k, v in image_mb.items())}; "
        f"uncompressed, ECR stores less) x ${ECR_GB_MONTH}/GB-month = ${ecr:.2f}; each of the up to {keep_images} "
        "kept tags adds only the layers it changed",
        (
            f"S3: {stored_s3_gb:.2f} GB stored x ${S3_GB_MONTH}/GB-month = ${s3:.2f}"
            if stored_s3_gb is not None
            else f"S3: ${S3_GB_MONTH}/GB-month of shards and run outputs you keep (nothing at first; runs expire)"
        ),
        f"CloudWatch Logs: ${LOGS_GB_MONTH}/GB-month of logs kept {log_retention_days} days after the last run, "
        "then nothing",
        "Lambda, Step Functions: nothing while idle (per request and duration only)",
    ]
    return IdleCost(lines, round(ecr + s3, 2))


def bucket_size_gb(cloudwatch: CloudWatchClient, buckets: Iterable[str]) -> float | None:
    """Stored bytes of the buckets from CloudWatch's daily BucketSizeBytes, None when unknown."""
    import datetime as dt

    from botocore.exceptions import BotoCoreError, ClientError

    total = 0.0
    now = dt.datetime.now(dt.UTC)
    try:
        for bucket in buckets:
            points = cloudwatch.get_metric_statistics(
                Namespace="AWS/S3",
                MetricName="BucketSizeBytes",
                StartTime=now - dt.timedelta(days=3),
                EndTime=now,
                Period=86400,
                Statistics=["Average"],
                Dimensions=[
                    {"Name": "BucketName", "Value": bucket},
                    {"Name": "StorageType", "Value": "StandardStorage"},
                ],
            ).get("Datapoints", [])
            if points:
                total += max(points, key=lambda p: p["Timestamp"])["Average"]
    except (BotoCoreError, ClientError):
        return None
    return total / 1e9


# ---- running it --------------------------------------------------------------------


@dataclass
class Context:
    """What stack.py knows that the checks need."""

    target: str
    explicit_region: str
    endpoint: str
    state_file: Path
    settings: Settings
    uses_images: bool
    base_image: str
    runtime_image: str
    wheel_source: str
    make_target: Callable[[str], Target]  # region -> the target there
    plan: Callable[[Target], list[str]]  # terraform plan -json lines (raises DeployError)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def images_tools() -> tuple[Any, Any, Any]:
    """scripts/images' modules (they import each other as top-level modules)."""
    images_dir = str(ROOT / "scripts" / "images")
    if images_dir not in sys.path:
        sys.path.insert(0, images_dir)
    import build  # noqa: PLC0415
    import docker_engine  # noqa: PLC0415
    import wheelhouse  # noqa: PLC0415

    return build, docker_engine, wheelhouse


def pip_find_links(environ: Mapping[str, str]) -> list[Path]:
    """pip's find-links folders (PIP_FIND_LINKS and pip config), where an offline torch may lie."""
    values = [environ.get("PIP_FIND_LINKS", "")]
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    values += [line.split("=", 1)[1].strip("'\"") for line in proc.stdout.splitlines() if "find-links=" in line]
    return [Path(p) for v in values for p in v.split() if p and not p.startswith(("http:", "https:"))]


def payload_defaults() -> tuple[int, int]:
    """(default max_concurrency, its upper bound) of a run payload (handlers/cosmicai/payload.py)."""
    from cosmicai.payload import MAX_CONCURRENCY_LIMIT, RunPayload

    return int(RunPayload.model_fields["max_concurrency"].default), int(MAX_CONCURRENCY_LIMIT)


def image_checks(ctx: Context) -> list[Check]:
    """Docker, the base image and the wheel source: what `make images` needs on this machine."""
    if not ctx.uses_images:
        return [Check("docker", "SKIP", "the local process executor runs no images (LOCALSTACK_EXECUTOR=docker does)")]
    build, docker_engine, wheelhouse = images_tools()
    architecture = str(ctx.settings.get("architecture", "x86_64"))
    platform = build.platform_for(architecture)
    docker_check, client = check_docker(lambda: docker_engine.docker_client(timeout=15), platform)
    checks = [docker_check]
    if client is not None:
        checks.append(
            check_base_image(
                client,
                ctx.base_image,
                ctx.runtime_image,
                platform,
                is_root=os.geteuid() == 0,
                has_debootstrap=shutil.which("debootstrap") is not None,
            )
        )
    else:
        checks.append(Check("base image", "SKIP", "no Docker engine"))
    checks.append(
        check_wheel_source(
            ctx.wheel_source,
            wheelhouse.torch_pin(),
            wheelhouse.WHEEL_MACHINES[architecture],
            build.WHEELHOUSE,
            wheelhouse.torch_index_url(),
            wheelhouse.index_reachable,
            pip_find_links(ctx.environ),
        )
    )
    return checks


def cloud_checks(ctx: Context, target: Target) -> list[Check]:
    """Lambda concurrency and Step Functions quotas of the account, read-only."""
    from botocore.exceptions import BotoCoreError, ClientError

    max_concurrency, limit = payload_defaults()
    prefix = str(ctx.settings.get("name_prefix", "cosmicai"))
    orchestration = int(ctx.settings.get("orchestration_reserved_concurrency", -1))
    functions = {
        f"{prefix}-infer": int(ctx.settings.get("infer_reserved_concurrency", -1)),
        f"{prefix}-init": orchestration,
        f"{prefix}-summarize": orchestration,
    }
    checks: list[Check] = []
    try:
        lam = target.client("lambda")
        account = lam.get_account_settings()["AccountLimit"]
        current = current_reservations(lam, functions)
        checks += check_lambda_concurrency(
            account, max_concurrency, Reservations(functions), current, f"{prefix}-infer"
        )
    except (BotoCoreError, ClientError) as exc:
        checks.append(
            Check(
                "lambda concurrency",
                "FAIL",
                f"reading the account's Lambda concurrency failed: {exc}",
                "grant lambda:GetAccountSettings and lambda:GetFunctionConcurrency to the deploying identity",
            )
        )
    # Service Quotas is an AWS service only; the local cloud gets the documented numbers.
    quota = (
        None
        if target.is_local
        else service_quota(target.client("service-quotas"), "states", ("registered", "state machines"))
    )
    checks += check_step_functions(target.client("stepfunctions"), quota, f"{prefix}-pipeline", max_concurrency, limit)
    return checks


def run_checks(ctx: Context) -> tuple[list[Check], Target | None]:
    """Every check that applies to the target, in order; returns them and the Target when it answers."""
    from .regions import profile_region

    region_check, resolved = check_region(ctx.target, ctx.explicit_region, ctx.environ, profile_region, ctx.state_file)
    checks = [region_check]
    target = ctx.make_target(resolved.region) if resolved is not None else None
    if target is None:
        checks.append(Check("credentials", "SKIP", "no region"))
    elif target.is_local and not _local_cloud_answers(target, checks):
        target = None
    else:
        checks.append(check_credentials(target.client("sts"), ctx.target))
        if checks[-1].status != "PASS":
            target = None
    # Docker, base image and wheels are this machine's business: checked whatever the cloud says.
    checks += image_checks(ctx)
    if target is None:
        checks += [
            Check("lambda concurrency", "SKIP", "the target does not answer"),
            Check("step functions", "SKIP", "the target does not answer"),
        ]
    else:
        checks += cloud_checks(ctx, target)
    return checks, target


def _local_cloud_answers(target: Target, checks: list[Check]) -> bool:
    """LocalStack's health endpoint answers (appends the FAIL when not)."""
    try:
        checks.append(Check("local cloud", "PASS", target.check_reachable()))
    except DeployError as exc:
        checks.append(Check("local cloud", "FAIL", str(exc), "make localstack-up (LOCALSTACK_PORT=... if not 4566)"))
        return False
    return True


def format_check(c: Check) -> str:
    line = f"{c.status:<5} {c.name:<20} {c.detail}"
    return line + (f"\n      fix: {c.fix}" if c.fix and c.status in ("WARN", "FAIL") else "")


def main(ctx: Context, out: Callable[[str], None] = print) -> int:
    """Run the checks, print them, the plan and the idle cost; 1 when any check FAILed."""
    out(f"preflight TARGET={ctx.target}: nothing is created or changed")
    checks, target = run_checks(ctx)
    for c in checks:
        out(format_check(c))
    out("")
    out("make deploy would create:")
    try:
        if target is None:
            raise DeployError("the target does not answer with working credentials")
        changes = planned_changes(ctx.plan(target))
        counts: dict[str, int] = {}
        for action, addr in changes:
            counts[action] = counts.get(action, 0) + 1
            out(f"  {action:<8} {addr}")
        out(f"  terraform plan: {', '.join(f'{n} to {a}' for a, n in sorted(counts.items())) or 'no changes'}")
    except DeployError as exc:
        out(f"  (no terraform plan: {str(exc).splitlines()[0][:300]}; the configuration declares:)")
        for addr in module_resources(ROOT / "terraform"):
            out(f"  {addr}")
    if ctx.target == "aws":
        out("")
        out(idle_cost_report(ctx, target))
    failed = [c for c in checks if c.status == "FAIL"]
    warned = [c for c in checks if c.status == "WARN"]
    out("")
    out(
        f"preflight: {len(failed)} FAIL, {len(warned)} WARN, {sum(c.status == 'PASS' for c in checks)} PASS"
        + (f" -- fix {', '.join(c.name for c in failed)} before `make deploy TARGET={ctx.target}`" if failed else "")
    )
    return 1 if failed else 0


def idle_cost_report(ctx: Context, target: Target | None) -> str:
    """The idle monthly cost section (image sizes from build/images.json, else the budgets)."""
    _build, _engine, _wheels = images_tools()
    from image_spec import IMAGES  # noqa: PLC0415 - on sys.path through _images_tools

    sizes = {name: float(spec.budget_mb) for name, spec in IMAGES.items()}
    manifest = ROOT / "build" / "images.json"
    source = "size budgets"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        if all(isinstance(data.get(n), dict) and "size_mb" in data[n] for n in sizes):
            sizes = {n: float(data[n]["size_mb"]) for n in sizes}
            source = "build/images.json"
    stored = None
    deployed = _outputs(ctx.state_file)
    if target is not None and deployed.get("data_bucket") and deployed.get("results_bucket"):
        # A deployed stack: what its buckets hold now (CloudWatch's daily storage metric).
        stored = bucket_size_gb(target.client("cloudwatch"), [deployed["data_bucket"], deployed["results_bucket"]])
    cost = idle_cost(
        sizes, int(ctx.settings.get("ecr_keep_images", 10)), stored, int(ctx.settings.get("log_retention_days", 14))
    )
    return "\n".join(
        [
            f"idle monthly cost (us-east-1 list prices; images by {source}): about ${cost.total_usd:.2f}",
            *[f"  {line}" for line in cost.lines],
            f"  prices: {PRICES_URL}",
        ]
    )


def _outputs(state_file: Path) -> dict[str, str]:
    """String outputs of a deployed stack's state ({} when none)."""
    try:
        outputs = json.loads(state_file.read_text()).get("outputs", {})
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {k: v.get("value") for k, v in outputs.items() if isinstance(v.get("value"), str)}
