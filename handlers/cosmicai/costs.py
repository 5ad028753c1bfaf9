"""AWS cost model (REFERENCE.md section 4): one bill of a run, every charge counted.

`run_bill(shape, usage, deployment, prices) -> Bill` is the one place a run is priced: the run
summary (worker reports), the bench projection and the dry run (`project_run`), and `cosmicai
costs` (REPORT lines) all call it. A run enters as counts and totals, never per-worker lists:
`RunShape` (objects, shards, work items, cold starts, retries, failed items, wall time) and
`LambdaUsage` (billed GB-seconds by function: measured, or modelled by `lambda_usage` from
`WorkerSeconds`, themselves measured or projected from rates by `project_seconds`). It counts:

- Lambda GB-seconds of wall time: infer (INIT of each cold start, shard download at a stated S3
  throughput, compute, uploads), Init and Summarize;
- Lambda requests: Init, one per work item and per retry, Record failure per failed item, Summarize;
- Step Functions transitions per statemachine/pipeline.asl.json (run states, Map children,
  retries, Record failure; tests/unit/test_costs_bill.py parses the ASL);
- every S3 request the code makes, by caller (plan.py, the Map's ItemReader, worker.py,
  summary.py, `cosmicai invoke`; the same test runs the code against a counting S3 double);
- CloudWatch Logs ingestion: the functions' JSON lines at their log level, Lambda's START, END
  and REPORT lines, Step Functions execution logs at the configured level.

Prices are us-east-1 list prices; every figure carries its source.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

MB_PER_VCPU = 1769  # Lambda gives one full vCPU at 1,769 MB ...
MAX_VCPU = 6  # ... and 6 vCPU at the 10,240 MB maximum
MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10240
PER_MILLION = 1_000_000
# Throughput when no bench/results.json is at hand: the worker path's objects per CPU-second at
# one thread by precision, and the init (cold start to first prediction), of `make bench` on the
# 2-core AVX-512 build machine (bench/REPORT.md, 2026-11-25). Rerun `make bench` on your host.
MEASURED_OBJECTS_PER_S = {"fp32": 386.0, "bf16": 564.0, "int8": 699.0}
MEASURED_INIT_S = 1.43
MEASURED_SOURCE = "built-in figures of bench/REPORT.md 2026-11-25"

# A safetensors shard object: a 5x32x32 float32 image, 5 float32 magnitudes, an int64 id and a
# float32 redshift (a 100 MB shard of 5,113 objects measured 104,878,272 bytes: 20,512 per object).
BYTES_PER_OBJECT = 5 * 32 * 32 * 4 + 5 * 4 + 8 + 4
# The worker's Parquet catalog: 67,336 bytes for a shard of 5,113 synthetic objects (13.2 per object).
CATALOG_BYTES_PER_OBJECT = 13.2
# One Lambda reading S3 with one GET stream: 538 Mbit/s = 67 MB/s measured (Hellerstein et al.,
# "Serverless Computing: One Step Forward, Two Steps Back", CIDR 2019); AWS's S3 performance guide
# gives 85-90 MB/s per request as the most one GET stream reaches. The worker makes one GET per shard.
S3_MB_PER_S = 67.0
# Latency of one small S3 request (first byte, a PUT of a report): 20-50 ms (summary.py's reads of
# 40,000 reports); the upper end is taken.
S3_REQUEST_S = 0.05
LIST_PAGE_KEYS = 1000  # ListObjectsV2 returns at most 1,000 keys a page

# --- Step Functions transitions, per statemachine/pipeline.asl.json ---
# The run's own states on its success path, one transition each.
RUN_STATES = ("Init", "Infer all items", "Summarize", "Run failed?", "Done")
# A Distributed Map child bills its start and its Infer task (REFERENCE section 4); a retry
# re-enters its state (one more); a caught item runs "Record failure" (one more).
CHILD_TRANSITIONS = 2

# --- Init and Summarize durations, modelled from measurements (bench/REPORT.md) ---
# Init planned 200,000 shards from a manifest in 157.96 s (0.79 ms a shard; scale rehearsal, local
# cloud); the streaming Summarize read 40,000 items' reports and partials in 71.9 s at 25 ms a GET
# (1.8 ms an item; "Summarize at the limits", 2026-11-30). Each also pays its own INIT (orchestration image, no torch):
# about 1 s (REPORT Init Duration 1.07-1.38 s on the local cloud, tests/unit/data).
ORCHESTRATION_INIT_S = 1.0
INIT_S_PER_SHARD = 157.96 / 200_000
SUMMARIZE_S_PER_ITEM = 71.9 / 40_000
RECORD_FAILURE_S = 0.1  # one PUT of a failure report (REPORT: 18-121 ms warm on the local cloud)

# --- CloudWatch Logs ---
# PutLogEvents counts each event as its UTF-8 message plus 26 bytes (CloudWatch Logs API
# reference); counted here as ingested bytes (an upper bound if AWS bills the message alone).
LOG_EVENT_OVERHEAD_BYTES = 26
_REQUEST_ID = "8f5e2a1c-3b4d-4e6f-9a0b-1c2d3e4f5a6b"  # Lambda request ids are 36-character UUIDs
# Lambda's platform lines of one invocation, in AWS's text format (REPORT of a cold start).
LAMBDA_PLATFORM_LINES = (
    f"START RequestId: {_REQUEST_ID} Version: $LATEST",
    f"END RequestId: {_REQUEST_ID}",
    f"REPORT RequestId: {_REQUEST_ID}\tDuration: 9461.52 ms\tBilled Duration: 10895 ms\tMemory Size: 1769 MB\t"
    "Max Memory Used: 512 MB\tInit Duration: 1433.10 ms\t",
)
# The functions' JSON lines (cosmicai.jsonlog) at INFO, measured from their output with a
# 40-character shard key and the stack's bucket names: the worker's "shard done" (per shard) and
# "item done" (per item); Init's "planning run" and "plan written", Summarize's "run summarized"
# (per run); Record failure's "item failed" (WARNING, per failed item).
WORKER_LOG_BYTES_PER_SHARD = 257
WORKER_LOG_BYTES_PER_ITEM = 225
ORCHESTRATION_LOG_BYTES_PER_RUN = 281 + 214 + 277
RECORD_FAILURE_LOG_BYTES = 247
FUNCTION_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Step Functions execution logs: one record per history event. ALL logs every event; ERROR and
# FATAL only failures. A record without execution data (include_execution_data = false):
SFN_LOG_RECORD = json.dumps(
    {
        "id": "12",
        "type": "TaskStateExited",
        "details": {"name": "Infer", "outputDetails": {"truncated": False}},
        "previous_event_id": "11",
        "event_timestamp": "1764491696000",
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:cosmicai-pipeline/"
        "0123abcd-4567-89ef-0123-456789abcdef:run-20261130T083451Z-72177a-20261130T083451-1a2b",
        "redrive_count": "0",
    }
)
SFN_LOG_LEVELS = ("ALL", "ERROR", "FATAL")
# History events at ALL: the run (ExecutionStarted, 5 each for Init and Summarize, MapStateEntered,
# MapRunStarted, MapRunSucceeded, MapStateExited, 2 for the Choice, 2 for Done, ExecutionSucceeded);
# a Map child (ExecutionStarted, TaskStateEntered, TaskScheduled, TaskStarted, TaskSucceeded,
# TaskStateExited, ExecutionSucceeded); a retry (TaskFailed, TaskScheduled, TaskStarted); a caught
# item (TaskFailed, then Record failure's 5). At ERROR: one failure event per retry, two per caught item.
SFN_EVENTS_ALL = {"run": 20, "child": 7, "retry": 3, "failed_item": 6}
SFN_EVENTS_ERROR = {"run": 0, "child": 0, "retry": 1, "failed_item": 2}

# --- cosmicai invoke, the client: progress polls while the run runs ---
INVOKE_POLL_S = 2.0  # `cosmicai invoke --poll` default


class CostError(ValueError):
    """An impossible cost-model input (message names the input and its value)."""


@dataclass(frozen=True)
class Prices:
    """USD list prices, us-east-1, as REFERENCE.md section 4 gives them (2026-11-30): Lambda, Step Functions
    standard, S3 standard requests (aws.amazon.com/s3/pricing: LIST in the PUT tier, HEAD in the GET tier),
    CloudWatch Logs standard ingestion. Not re-read from AWS on that date (this machine is offline)."""

    lambda_gb_s_x86: float = 0.0000166667
    lambda_gb_s_arm64: float = 0.0000133334
    lambda_per_request: float = 0.20 / PER_MILLION
    sfn_per_transition: float = 0.025 / 1000
    s3_get: float = 0.0004 / 1000  # GET, SELECT and all other requests
    s3_head: float = 0.0004 / 1000  # priced as GET
    s3_put: float = 0.005 / 1000  # PUT, COPY, POST
    s3_list: float = 0.005 / 1000  # LIST is priced as PUT
    logs_ingest_per_gb: float = 0.50  # CloudWatch Logs standard ingestion (Lambda's vended logs: the first tier)

    def gb_second(self, arch: str) -> float:
        """Lambda GB-second price for `x86_64` or `arm64`."""
        if arch in ("x86_64", "x86"):
            return self.lambda_gb_s_x86
        if arch == "arm64":
            return self.lambda_gb_s_arm64
        raise CostError(f"arch {arch!r} unknown; use 'x86_64' or 'arm64'")


DEFAULT_PRICES = Prices()


def _check_memory(memory_mb: float) -> None:
    if not MIN_MEMORY_MB <= memory_mb <= MAX_MEMORY_MB:
        raise CostError(f"memory_mb={memory_mb} outside Lambda's {MIN_MEMORY_MB}..{MAX_MEMORY_MB} MB")


def vcpus_for_memory(memory_mb: float) -> float:
    """Lambda's CPU share at a memory size: memory / 1,769 MB (5.79 at 10,240 MB, spread over 6 vCPU)."""
    _check_memory(memory_mb)
    return min(MAX_VCPU, memory_mb / MB_PER_VCPU)


def memory_for_vcpus(vcpus: float) -> int:
    """Smallest whole-MB memory size with a CPU share of `vcpus` (6 means the 10,240 MB maximum)."""
    if not 0 < vcpus <= MAX_VCPU:
        raise CostError(f"vcpus={vcpus} outside 0..{MAX_VCPU}")
    return min(MAX_MEMORY_MB, max(MIN_MEMORY_MB, math.ceil(vcpus * MB_PER_VCPU)))


def lambda_compute_usd(
    memory_mb: float, billed_s: float, arch: str = "x86_64", prices: Prices = DEFAULT_PRICES
) -> float:
    """Compute charge of one invocation: GB x billed seconds x GB-s price."""
    _check_memory(memory_mb)
    if billed_s < 0:
        raise CostError(f"billed_s={billed_s} is negative")
    return memory_mb / 1024 * billed_s * prices.gb_second(arch)


@dataclass(frozen=True)
class Deployment:
    """What the stack deploys that the bill depends on (terraform/variables.tf defaults)."""

    infer_memory_mb: float = 1769
    arch: str = "x86_64"
    init_memory_mb: float = 512
    summarize_memory_mb: float = 1769
    function_log_level: str = "INFO"  # var.log_level (COSMICAI_LOG_LEVEL)
    state_machine_log_level: str = "ERROR"  # var.state_machine_log_level (AWS's default too)

    def __post_init__(self) -> None:
        for name in ("infer_memory_mb", "init_memory_mb", "summarize_memory_mb"):
            try:
                _check_memory(getattr(self, name))
            except CostError as exc:
                raise CostError(f"{name}: {exc}") from None
        DEFAULT_PRICES.gb_second(self.arch)
        if self.function_log_level not in FUNCTION_LOG_LEVELS:
            raise CostError(f"function_log_level={self.function_log_level!r}: one of {', '.join(FUNCTION_LOG_LEVELS)}")
        if self.state_machine_log_level not in SFN_LOG_LEVELS:
            raise CostError(
                f"state_machine_log_level={self.state_machine_log_level!r}: one of {', '.join(SFN_LOG_LEVELS)}"
            )


@dataclass(frozen=True)
class RunShape:
    """A run in counts and totals: what every charge but Lambda time is counted from."""

    objects: int
    shards: int
    items: int  # work items = Map children = first Infer attempts
    cold_starts: int  # infer execution environments started (each bills INIT once)
    infer_retries: int = 0  # Infer attempts the Map retried (each redoes a mean item: an upper bound)
    failed_items: int = 0  # items caught into "Record failure"
    manifest: bool = True  # Init counts from manifest.json (else one ranged GET per shard header)
    wall_s: float = 0.0  # the run's wall time, during which `cosmicai invoke` polls for progress
    catalogs_downloaded: bool = True  # `cosmicai invoke` merges the catalog (at most 2 GB by default)

    def __post_init__(self) -> None:
        if self.items < 1 or self.shards < self.items or self.objects < 0:
            raise CostError(
                f"items={self.items} must be >= 1, shards={self.shards} >= items, objects={self.objects} >= 0"
            )
        for name in ("cold_starts", "infer_retries", "failed_items"):
            if getattr(self, name) < 0:
                raise CostError(f"{name}={getattr(self, name)} must be >= 0")
        if self.cold_starts > self.items + self.infer_retries:
            raise CostError(
                f"cold_starts={self.cold_starts} exceeds the {self.items + self.infer_retries} infer invocations"
            )
        if self.wall_s < 0:
            raise CostError(f"wall_s={self.wall_s} is negative")


@dataclass(frozen=True)
class WorkerSeconds:
    """Billed seconds of all infer invocations together, by phase (measured or projected)."""

    init_s: float  # INIT of the cold starts (container images bill it)
    download_s: float  # shard GETs not hidden behind compute
    compute_s: float
    upload_s: float  # catalogs, the metric partial and the report
    other_s: float = 0.0  # measured only: engine build, parsing, encoding (wall minus the phases)

    @property
    def total_s(self) -> float:
        return self.init_s + self.download_s + self.compute_s + self.upload_s + self.other_s


@dataclass(frozen=True)
class Rates:
    """What projected worker seconds come from."""

    objects_per_s: float  # one invocation's compute rate at its memory size
    init_s: float  # INIT per cold start
    bytes_per_object: float = BYTES_PER_OBJECT
    s3_mb_per_s: float = S3_MB_PER_S
    s3_request_s: float = S3_REQUEST_S
    catalog_bytes_per_object: float = CATALOG_BYTES_PER_OBJECT

    def __post_init__(self) -> None:
        if self.objects_per_s <= 0:
            raise CostError(f"objects_per_s={self.objects_per_s} must be > 0")
        if self.init_s < 0 or self.s3_mb_per_s <= 0 or self.s3_request_s < 0 or self.bytes_per_object < 0:
            raise CostError(
                f"init_s={self.init_s}, s3_request_s={self.s3_request_s} and bytes_per_object="
                f"{self.bytes_per_object} must be >= 0, s3_mb_per_s={self.s3_mb_per_s} > 0"
            )


def item_seconds(objects: float, shards: float, rates: Rates) -> WorkerSeconds:
    """Seconds of one warm infer invocation of `shards` shards holding `objects` objects (worker.run_item):
    the first shard's GET in full, later ones prefetched during the previous shard's compute."""
    per_shard = objects / shards
    download = rates.s3_request_s + per_shard * rates.bytes_per_object / (rates.s3_mb_per_s * 1e6)
    compute = per_shard / rates.objects_per_s
    upload = rates.s3_request_s + per_shard * rates.catalog_bytes_per_object / (rates.s3_mb_per_s * 1e6)
    return WorkerSeconds(
        init_s=0.0,
        download_s=download + (shards - 1) * max(0.0, download - compute),
        compute_s=shards * compute,
        upload_s=shards * upload + 2 * rates.s3_request_s,
    )


def project_seconds(shape: RunShape, rates: Rates) -> WorkerSeconds:
    """Projected infer seconds of a run: every attempt (items and retries) a mean item, INIT per cold start."""
    one = item_seconds(shape.objects / shape.items, shape.shards / shape.items, rates)
    attempts = shape.items + shape.infer_retries
    return WorkerSeconds(
        init_s=shape.cold_starts * rates.init_s,
        download_s=attempts * one.download_s,
        compute_s=attempts * one.compute_s,
        upload_s=attempts * one.upload_s,
    )


@dataclass(frozen=True)
class LambdaUsage:
    """Billed GB-seconds of a run by function, and where they come from."""

    infer_gb_s: float
    init_gb_s: float
    summarize_gb_s: float  # Summarize and Record failure
    source: str

    @property
    def total_gb_s(self) -> float:
        return self.infer_gb_s + self.init_gb_s + self.summarize_gb_s


def orchestration_seconds(shape: RunShape) -> tuple[float, float]:
    """(Init, Summarize + Record failure) billed seconds, modelled from the measured durations above."""
    init = ORCHESTRATION_INIT_S + INIT_S_PER_SHARD * shape.shards
    summarize = ORCHESTRATION_INIT_S + SUMMARIZE_S_PER_ITEM * shape.items + RECORD_FAILURE_S * shape.failed_items
    return init, summarize


def usage_with_orchestration(shape: RunShape, infer_gb_s: float, deployment: Deployment, source: str) -> LambdaUsage:
    """The infer GB-seconds given (measured by the worker reports, or projected) and Init's and
    Summarize's modelled ones (orchestration_seconds)."""
    init_s, summarize_s = orchestration_seconds(shape)
    return LambdaUsage(
        infer_gb_s=infer_gb_s,
        init_gb_s=deployment.init_memory_mb / 1024 * init_s,
        summarize_gb_s=deployment.summarize_memory_mb / 1024 * summarize_s,
        source=source,
    )


def lambda_usage(shape: RunShape, worker: WorkerSeconds, deployment: Deployment, source: str) -> LambdaUsage:
    """GB-seconds from the infer workers' seconds and the modelled Init and Summarize seconds."""
    return usage_with_orchestration(shape, deployment.infer_memory_mb / 1024 * worker.total_s, deployment, source)


@dataclass(frozen=True)
class S3Requests:
    """S3 requests by kind (fractional where retries redo a mean item)."""

    get: float = 0.0
    put: float = 0.0
    list: float = 0.0
    head: float = 0.0

    def usd(self, prices: Prices) -> float:
        return (
            self.get * prices.s3_get
            + self.put * prices.s3_put
            + self.list * prices.s3_list
            + self.head * prices.s3_head
        )


def _pages(keys: float) -> int:
    return max(1, math.ceil(keys / LIST_PAGE_KEYS))


def s3_requests(shape: RunShape) -> dict[str, S3Requests]:
    """Every S3 request of a run by caller, as the code makes them (tests/unit/test_costs_bill.py checks
    each against the code run on a counting S3 double)."""
    s, i = shape.shards, shape.items
    redo = shape.infer_retries / i  # a retried attempt redoes a mean item
    polls = max(1, math.ceil(shape.wall_s / INVOKE_POLL_S))
    return {
        # plan.plan_run: two location checks, the input listing, run.json's existence; the manifest
        # (or a ranged GET per shard header); prepare_run: plan.json and run.json
        "init": S3Requests(list=2 + _pages(s + 1) + 1, get=1 if shape.manifest else s, put=2),
        "map_item_reader": S3Requests(get=1),  # the Distributed Map reads plan.json
        # worker.run_item: a GET per shard, a catalog PUT per shard, the metric partial and the report
        "infer": S3Requests(get=s * (1 + redo), put=(s + 2 * i) * (1 + redo)),
        "record_failure": S3Requests(put=shape.failed_items),  # the failure report
        # summary.summarize_run: run.json and plan.json (listed, read), workers/, predictions/ and
        # metrics/ listed, every report and metric partial read; summary.json and its two line files
        # (summary/workers.jsonl, summary/failures.jsonl) written
        "summarize": S3Requests(list=2 + 2 * _pages(i) + _pages(s), get=2 + 2 * i, put=3),
        # cosmicai invoke: progress polls (run.json HEAD and GET, workers/ listed, each new report
        # read), then report.fetch_run (summary, run and plan listed and read; the reports; the two
        # line files; predictions/ listed and the catalogs read)
        "client": S3Requests(
            head=1,
            list=polls * _pages(i) + 3 + _pages(i) + _pages(s),
            get=6 + 2 * i + (s if shape.catalogs_downloaded else 0),
        ),
    }


def transitions(shape: RunShape) -> int:
    """Step Functions state transitions of a run, per the ASL (RUN_STATES, CHILD_TRANSITIONS)."""
    return len(RUN_STATES) + CHILD_TRANSITIONS * shape.items + shape.infer_retries + shape.failed_items


def lambda_requests(shape: RunShape) -> int:
    """Invocations: Init, every Infer attempt, Record failure per failed item, Summarize."""
    return 1 + shape.items + shape.infer_retries + shape.failed_items + 1


def log_bytes(shape: RunShape, deployment: Deployment) -> dict[str, float]:
    """CloudWatch Logs bytes ingested by a run, by source, at the deployment's log levels."""
    out: dict[str, float] = {}
    info = FUNCTION_LOG_LEVELS.index(deployment.function_log_level) <= FUNCTION_LOG_LEVELS.index("INFO")
    warning = FUNCTION_LOG_LEVELS.index(deployment.function_log_level) <= FUNCTION_LOG_LEVELS.index("WARNING")
    function_lines = (shape.shards + shape.items + 3) if info else 0
    function_lines += shape.failed_items if warning else 0
    function_bytes = (
        (
            WORKER_LOG_BYTES_PER_SHARD * shape.shards
            + WORKER_LOG_BYTES_PER_ITEM * shape.items
            + ORCHESTRATION_LOG_BYTES_PER_RUN
        )
        if info
        else 0
    )
    function_bytes += RECORD_FAILURE_LOG_BYTES * shape.failed_items if warning else 0
    out["functions"] = function_bytes + LOG_EVENT_OVERHEAD_BYTES * function_lines
    per_invocation = sum(len(line) + LOG_EVENT_OVERHEAD_BYTES for line in LAMBDA_PLATFORM_LINES)
    out["lambda_platform"] = per_invocation * lambda_requests(shape)
    counts = SFN_EVENTS_ALL if deployment.state_machine_log_level == "ALL" else SFN_EVENTS_ERROR
    sfn_events = (
        counts["run"]
        + counts["child"] * shape.items
        + counts["retry"] * shape.infer_retries
        + counts["failed_item"] * shape.failed_items
    )
    out["step_functions"] = sfn_events * (len(SFN_LOG_RECORD) + LOG_EVENT_OVERHEAD_BYTES)
    return out


@dataclass(frozen=True)
class Bill:
    """A run's charges in USD with every count behind them."""

    objects: int
    lambda_compute: float
    lambda_requests: float
    step_functions: float
    s3_requests: float
    logs: float
    usage: LambdaUsage
    invocations: int
    transitions: int
    s3: dict[str, S3Requests] = field(default_factory=dict)
    log_bytes: dict[str, float] = field(default_factory=dict)
    deployment: Deployment = field(default_factory=Deployment)

    @property
    def components(self) -> dict[str, float]:
        return {
            "lambda_compute": self.lambda_compute,
            "lambda_requests": self.lambda_requests,
            "step_functions": self.step_functions,
            "s3_requests": self.s3_requests,
            "cloudwatch_logs": self.logs,
        }

    @property
    def usd(self) -> float:
        return sum(self.components.values())

    @property
    def usd_per_million_objects(self) -> float | None:
        return self.usd * PER_MILLION / self.objects if self.objects else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: totals, components (run USD and per million objects) and the counts behind them."""
        per_m = PER_MILLION / self.objects if self.objects else None
        return {
            "usd": self.usd,
            "usd_per_million_objects": self.usd_per_million_objects,
            "components": self.components,
            "components_per_million": {k: v * per_m for k, v in self.components.items()} if per_m else None,
            "counts": {
                "objects": self.objects,
                "invocations": self.invocations,
                "transitions": self.transitions,
                "gb_seconds": {
                    "infer": self.usage.infer_gb_s,
                    "init": self.usage.init_gb_s,
                    "summarize": self.usage.summarize_gb_s,
                    "source": self.usage.source,
                },
                "s3_requests": {k: asdict(v) for k, v in self.s3.items()},
                "log_bytes": self.log_bytes,
            },
            "deployment": asdict(self.deployment),
        }


def run_bill(
    shape: RunShape, usage: LambdaUsage, deployment: Deployment = Deployment(), prices: Prices = DEFAULT_PRICES
) -> Bill:
    """The bill of a run: Lambda GB-s and requests, Step Functions, S3 requests, CloudWatch Logs."""
    s3 = s3_requests(shape)
    logs = log_bytes(shape, deployment)
    n_transitions = transitions(shape)
    invocations = lambda_requests(shape)
    return Bill(
        objects=shape.objects,
        lambda_compute=usage.total_gb_s * prices.gb_second(deployment.arch),
        lambda_requests=invocations * prices.lambda_per_request,
        step_functions=n_transitions * prices.sfn_per_transition,
        s3_requests=sum(r.usd(prices) for r in s3.values()),
        logs=sum(logs.values()) / 1e9 * prices.logs_ingest_per_gb,
        usage=usage,
        invocations=invocations,
        transitions=n_transitions,
        s3=s3,
        log_bytes=logs,
        deployment=deployment,
    )


def recommend_memory(
    objects_per_s_by_threads: dict[int, float], min_memory_mb: float = MIN_MEMORY_MB
) -> tuple[int, int]:
    """(threads, memory_mb) with the lowest GB-s per object, each thread given a full vCPU
    and never less memory than `min_memory_mb` (e.g. peak RSS plus headroom).

    Compute cost per object is memory / throughput, so a second thread only pays if it
    raises throughput more than it raises memory.
    """
    if not objects_per_s_by_threads:
        raise CostError("no throughput measurements to choose a memory size from")
    best: tuple[float, int, int] | None = None
    for threads, rate in sorted(objects_per_s_by_threads.items()):
        if rate <= 0:
            raise CostError(f"objects_per_s={rate} at {threads} thread(s) must be > 0")
        memory = max(memory_for_vcpus(min(threads, MAX_VCPU)), math.ceil(min_memory_mb))
        _check_memory(memory)
        score = memory / rate
        if best is None or score < best[0]:
            best = (score, threads, memory)
    assert best is not None
    return best[1], best[2]


def throughput_at_memory(objects_per_s_by_threads: dict[int, float], memory_mb: float) -> float:
    """Objects/s at a memory size, from rates measured at 1..k threads (one thread per vCPU share).

    Between measured thread counts the rate is interpolated linearly; below one vCPU it
    shrinks with the share; beyond the largest measured count the per-vCPU efficiency of
    that count is assumed to hold (an assumption, stated in every projection).
    """
    rates = {int(t): float(r) for t, r in objects_per_s_by_threads.items()}
    if 1 not in rates:
        raise CostError(f"throughput needs a measurement at thread count 1; got thread counts {sorted(rates)}")
    for t, r in rates.items():
        if t < 1 or r <= 0:
            raise CostError(f"objects_per_s={r} at {t} thread(s): thread counts must be >= 1 and rates > 0")
    vcpus = vcpus_for_memory(memory_mb)
    if vcpus <= 1:
        return rates[1] * vcpus
    counts = sorted(rates)
    top = counts[-1]
    if vcpus >= top:
        efficiency = rates[top] / (top * rates[1])
        rate = vcpus * rates[1] * efficiency
    else:
        lo = max(t for t in counts if t <= vcpus)
        hi = min(t for t in counts if t >= vcpus)
        rate = rates[lo] if lo == hi else rates[lo] + (rates[hi] - rates[lo]) * (vcpus - lo) / (hi - lo)
    # A worker with more vCPUs can always run the thread count that was fastest on fewer.
    return max(rate, max(r for t, r in rates.items() if t <= vcpus))


def project_run(
    *,
    objects_per_s: float,
    memory_mb: float,
    shard_objects: int,
    total_objects: int,
    concurrency: int,
    init_s: float = 0.0,
    arch: str = "x86_64",
    prices: Prices = DEFAULT_PRICES,
    shards_per_item: int = 1,
    deployment: Deployment | None = None,
    rates: Rates | None = None,
    cold_starts: int | None = None,
) -> dict[str, Any]:
    """Projected bill and wall time of a run of `total_objects` in shards of `shard_objects`,
    `shards_per_item` to a work item, at most `concurrency` workers at once.

    Cold starts: one per worker (min(items, concurrency)); a finished worker's environment takes
    the next item (Lambda reuses idle environments; not promised), unless `cold_starts` says.
    Wall time: one INIT, then the items in waves of `concurrency` (Init and Summarize not included).
    """
    if shard_objects < 1 or total_objects < 1 or concurrency < 1 or shards_per_item < 1:
        raise CostError(
            f"shard_objects={shard_objects}, total_objects={total_objects}, concurrency={concurrency}, "
            f"shards_per_item={shards_per_item} must be >= 1"
        )
    deployment = replace(deployment or Deployment(), infer_memory_mb=memory_mb, arch=arch)
    rates = replace(
        rates or Rates(objects_per_s=objects_per_s, init_s=init_s), objects_per_s=objects_per_s, init_s=init_s
    )
    shards = math.ceil(total_objects / shard_objects)
    items = math.ceil(shards / shards_per_item)
    waves = math.ceil(items / concurrency)
    one = item_seconds(total_objects / items, shards / items, rates)
    wall_s = init_s + waves * one.total_s
    cold = min(items, concurrency) if cold_starts is None else cold_starts
    shape = RunShape(objects=total_objects, shards=shards, items=items, cold_starts=cold, wall_s=wall_s)
    worker = project_seconds(shape, rates)
    bill = run_bill(shape, lambda_usage(shape, worker, deployment, "projected"), deployment, prices)
    return {
        "kind": "projection",
        "invocations": items,
        "shards": shards,
        "waves": waves,
        "workers": min(items, concurrency),
        "cold_starts": cold,
        "billed_s_per_invocation": worker.total_s / items,
        "item_seconds": asdict(one),
        "wall_s": wall_s,
        "run_usd": bill.usd,
        "cost": {
            "usd_per_million_objects": bill.usd_per_million_objects,
            "components": bill.as_dict()["components_per_million"],
            "vcpus": vcpus_for_memory(memory_mb),
        },
        "bill": bill.as_dict(),
        "rates": asdict(rates),
        "inputs": {
            "total_objects": total_objects,
            "concurrency": concurrency,
            "shard_objects": shard_objects,
            "shards_per_item": shards_per_item,
        },
    }


@dataclass(frozen=True)
class CostInputs:
    """A quote per million objects: one shard per invocation, every invocation cold (an upper bound)."""

    memory_mb: float
    objects_per_s: float  # per invocation, steady state
    objects_per_invocation: int
    init_s: float = 0.0  # billed INIT per invocation (container images bill it)
    arch: str = "x86_64"


def cost_per_million(inputs: CostInputs, prices: Prices = DEFAULT_PRICES) -> dict[str, Any]:
    """USD per million objects, by component (`run_bill` over a run of a million objects)."""
    i = inputs
    if i.objects_per_invocation < 1:
        raise CostError(f"objects_per_invocation={i.objects_per_invocation} must be >= 1")
    if i.init_s < 0:
        raise CostError(f"init_s={i.init_s} must be >= 0")
    invocations = math.ceil(PER_MILLION / i.objects_per_invocation)
    p = project_run(
        objects_per_s=i.objects_per_s,
        memory_mb=i.memory_mb,
        shard_objects=i.objects_per_invocation,
        total_objects=PER_MILLION,
        concurrency=invocations,
        init_s=i.init_s,
        arch=i.arch,
        prices=prices,
    )
    return {
        "usd_per_million_objects": p["cost"]["usd_per_million_objects"],
        "components": p["cost"]["components"],
        "billed_s_per_invocation": p["billed_s_per_invocation"],
        "invocations_per_million": invocations,
        "vcpus": p["cost"]["vcpus"],
        "inputs": asdict(i),
        "prices": asdict(prices),
    }


__all__ = [
    "DEFAULT_PRICES",
    "Bill",
    "CostError",
    "CostInputs",
    "Deployment",
    "LambdaUsage",
    "Prices",
    "Rates",
    "RunShape",
    "S3Requests",
    "WorkerSeconds",
    "cost_per_million",
    "item_seconds",
    "lambda_compute_usd",
    "lambda_requests",
    "lambda_usage",
    "log_bytes",
    "memory_for_vcpus",
    "orchestration_seconds",
    "project_run",
    "project_seconds",
    "recommend_memory",
    "run_bill",
    "s3_requests",
    "throughput_at_memory",
    "transitions",
    "usage_with_orchestration",
    "vcpus_for_memory",
]
