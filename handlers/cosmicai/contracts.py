"""The contracts between the parts of a run, each defined once, as typed models.

What crosses a boundary between the planner (Init), the Distributed Map, the workers (Infer),
Summarize and resume is one of these models (pydantic, as Powertools for AWS Lambda's parser
types the events at a handler's entry): a producer builds the model and writes
`model.wire()` (or `model_dump(mode="json")`), a consumer parses what it reads back into the
same model. The JSON shapes on the wire are those docs/CONTRACTS.md and docs/fan-out.md list.

- `WorkItem` (with `PlannedShard`): one entry of `plan.json` / `resume.json`; the planner writes
  it, the Map passes it to Infer, the worker parses it (`WorkItem.parse`).
- `FailedItem`: the work item the Map's Catch hands to Summarize's `record_failure` (the item
  plus the caught `error`; read leniently: the item itself may be what failed).
- `WorkerReport` (with `ShardResult`, `ReportError`, `Provenance`, `FunctionInfo`):
  `workers/<item_id>.json`; the worker (or `record_failure`) writes it, Summarize and resume
  read it. Serialised with the fields its writer set (a crashed item's report carries fewer).
- `ShardOutcome`: what Summarize and resume account for each planned shard.
- `InitResult`: Init's small result, read by the state machine's ResultSelector.
- `Precision`, `ConcretePrecision`, `Backend`, `UncertaintyMode`: the engine settings a payload
  and a work item name (Literal types; the tuples below are their values, for argparse
  `choices` and messages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from cosmicai.runstore import RunLocation

# --------------------------------------------------------------- engine settings

ConcretePrecision = Literal["fp32", "bf16", "int8"]
"""A precision an engine runs its transformer blocks in."""
Precision = Literal[ConcretePrecision, "fast"]
"""What a payload or the CLI may ask for: a concrete precision, or `fast` (the fastest qualified one)."""
Backend = Literal["torch", "openvino"]
UncertaintyMode = Literal["none", "tta8"]

PRECISIONS: tuple[ConcretePrecision, ...] = get_args(ConcretePrecision)
PRECISION_CHOICES: tuple[Precision, ...] = get_args(Precision)
BACKENDS: tuple[Backend, ...] = get_args(Backend)
UNCERTAINTY_MODES: tuple[UncertaintyMode, ...] = get_args(UncertaintyMode)

# The largest batch a payload (and so a work item) may ask for.
MAX_BATCH_SIZE = 8192

ShardStatus = Literal["succeeded", "failed"]
ItemStatus = Literal["succeeded", "partial", "failed"]


# --------------------------------------------------------------- validation errors


class FieldProblem(NamedTuple):
    """The first error of a pydantic ValidationError, flattened: dotted field path, error type,
    message, the offending input and the exception a validator raised (None if none)."""

    field: str
    kind: str
    message: str
    input: Any
    cause: BaseException | None


def first_problem(exc: ValidationError) -> FieldProblem:
    """The first error of `exc` (pydantic lists them in field order)."""
    err = exc.errors()[0]
    cause = err.get("ctx", {}).get("error")
    return FieldProblem(
        field=".".join(str(p) for p in err["loc"]) or "<root>",
        kind=err["type"],
        message=err["msg"],
        input=err.get("input"),
        cause=cause if isinstance(cause, BaseException) else None,
    )


class WorkItemError(ValueError):
    """The event is not a valid work item; the message names the field."""


# --------------------------------------------------------------- the work item


class PlannedShard(BaseModel):
    """One shard of a work item, as the planner wrote it."""

    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1)
    name: str = Field(min_length=1, pattern=r"^[^/]+$")
    bytes: int = Field(ge=0)
    count: int | None = Field(None, ge=0)


class WorkItem(BaseModel):
    """One work item: an entry of plan.json (resume.json), the input of one Infer invocation."""

    model_config = ConfigDict(extra="forbid")
    item_id: str = Field(pattern=r"^[A-Za-z0-9._\-]{1,100}$")
    run_id: str = Field(min_length=1)
    input_bucket: str = Field(min_length=3)
    output: str = Field(pattern=r"^s3://")
    batch_size: int = Field(ge=1, le=MAX_BATCH_SIZE)
    precision: Precision
    backend: Backend | None = None  # None: the function's INIT backend (handlers/infer.py)
    # per-object uncertainty (cosmicai.uncertainty): tta8 predicts the 8 rotations/flips of each cutout
    uncertainty: UncertaintyMode = "none"
    objects: int | None = None
    shards: list[PlannedShard] = Field(min_length=1)
    # a resumed run's item (resume.py): only its unfinished shards, merged into its earlier report
    resume: bool = False

    @classmethod
    def parse(cls, raw: Any) -> WorkItem:
        """Validate an event; raise WorkItemError naming the field."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problem = first_problem(exc)
            raise WorkItemError(f"work item field {problem.field}: {problem.message}") from None

    def wire(self) -> dict[str, Any]:
        """The JSON object plan.json / resume.json hold (`resume` only on a resumed item)."""
        drop = set() if self.resume else {"resume"}
        if self.backend is None:  # unset: the function's own backend, as the payload left it
            drop.add("backend")
        return self.model_dump(mode="json", exclude=drop or None)

    @property
    def location(self) -> RunLocation:
        """Output bucket and prefix."""
        from cosmicai.payload import split_s3_uri
        from cosmicai.runstore import RunLocation

        return RunLocation(*split_s3_uri(self.output, "output"))


class FailedShard(BaseModel):
    """A shard of a failed item as the Map's Catch passes it on (read leniently)."""

    model_config = ConfigDict(extra="ignore")
    key: str | None = None
    name: str | None = None
    count: int | None = None


class FailedItem(BaseModel):
    """Summarize's `record_failure` event `item`: the work item whose worker crashed or timed out,
    plus the Catch's `error` ({Error, Cause}). Only what the failure report needs is required:
    the item itself may be why the worker failed."""

    model_config = ConfigDict(extra="ignore")
    item_id: str
    output: str
    run_id: str | None = None
    shards: list[FailedShard] = Field(default_factory=list)
    resume: bool = False
    error: dict[str, Any] | None = None


# --------------------------------------------------------------- the worker report


class Provenance(BaseModel):
    """What a worker ran with (report `provenance`; the catalogs' `cosmicai.*` metadata)."""

    model_config = ConfigDict(extra="allow")
    cosmicai_version: str | None = None
    weights_name: str | None = None
    weights_sha256: str | None = None
    model_card: str | None = None
    backend: str | None = None
    precision: str | None = None
    uncertainty: str | None = None


class FunctionInfo(BaseModel):
    """The Lambda function a worker ran in (report `function`; `{}` outside Lambda)."""

    model_config = ConfigDict(extra="allow")
    function_name: str | None = None
    memory_mb: int | None = None
    request_id: str | None = None


class ShardResult(BaseModel):
    """One entry of a worker report's `shards`: a planned shard's result in that worker.

    Succeeded: `objects`, `labelled`, `prediction_key`, `download_s`, `compute_s`, `upload_s`,
    `objects_per_second`; failed: `error` (a ShardError code, `unreadable`, `too_large` or the
    caught Lambda error), `message`, `objects` (the planned count, 0 when unknown).
    """

    model_config = ConfigDict(extra="allow")
    key: str | None = None
    name: str | None = None
    download_s: float | None = None
    status: ShardStatus
    error: str | None = None
    message: str | None = None
    objects: int = 0
    labelled: bool | None = None
    prediction_key: str | None = None
    compute_s: float | None = None
    upload_s: float | None = None
    objects_per_second: float | None = None


class ReportError(BaseModel):
    """One entry of a worker report's `errors`: a failed shard."""

    model_config = ConfigDict(extra="allow")
    shard: str | None = None
    error: str | None = None
    message: str | None = None


class WorkerReport(BaseModel):
    """`workers/<item_id>.json`: what one work item did (docs/fan-out.md lists the fields).

    A live worker sets every field but `crashed`/`resumed`; a crashed item's report (written by
    `record_failure`) only `run_id, item_id, status, crashed, objects, finished_at, shards, errors`.
    `wire()` writes the fields that were set, so each keeps its shape.
    """

    model_config = ConfigDict(extra="allow")
    run_id: str | None = None
    item_id: str
    status: ItemStatus
    crashed: bool = False
    cold_start: bool | None = None
    init_seconds: float | None = None
    engine_seconds: float | None = None
    download_seconds: float | None = None
    compute_seconds: float | None = None
    upload_seconds: float | None = None
    wall_seconds: float | None = None
    objects: int = 0
    objects_per_second: float | None = None
    compute_objects_per_second: float | None = None
    peak_rss_mb: float | None = None
    cpus: int | None = None
    batch_size: int | None = None
    precision: str | None = None
    provenance: Provenance | None = None
    started_at: float | None = None
    finished_at: float | None = None
    function: FunctionInfo = Field(default_factory=FunctionInfo)
    shards: list[ShardResult] = Field(default_factory=list)
    errors: list[ReportError] = Field(default_factory=list)
    resumed: bool = False

    def wire(self) -> dict[str, Any]:
        """The JSON object written to `workers/<item_id>.json`."""
        return self.model_dump(mode="json", exclude_unset=True)


def item_status(shards: list[ShardResult]) -> ItemStatus:
    """An item's status from its shards': succeeded (all), failed (none), else partial."""
    ok = sum(1 for s in shards if s.status == "succeeded")
    return "succeeded" if ok == len(shards) else ("failed" if not ok else "partial")


def report_errors(shards: list[ShardResult]) -> list[ReportError]:
    """A report's `errors`: one entry per failed shard."""
    return [ReportError(shard=s.key, error=s.error, message=s.message) for s in shards if s.status != "succeeded"]


# --------------------------------------------------------------- Summarize's accounting


class ShardOutcome(BaseModel):
    """How Summarize (and resume) account one planned shard: succeeded only when its worker's
    report says so and its catalog exists; otherwise failed with an error code and message."""

    item_id: str
    key: str
    name: str
    status: ShardStatus
    objects: int
    error: str | None = None
    message: str | None = None
    prediction_key: str | None = None


# --------------------------------------------------------------- Init


class PlanLocation(BaseModel):
    """Where the Map's ItemReader finds this execution's work items (plan.json or resume.json)."""

    bucket: str
    key: str


class InitResult(BaseModel):
    """Init's result (the state machine's ResultSelector keeps all but `warnings`)."""

    run_id: str
    output: str
    plan: PlanLocation
    items: int
    shards: int
    objects: int
    max_concurrency: int
    warnings: int


# --------------------------------------------------------------- Summarize's events


class RecordFailureEvent(BaseModel):
    """Summarize's event from the Map's Catch: `{"action": "record_failure", "item": <FailedItem>}`."""

    model_config = ConfigDict(extra="ignore")
    action: Literal["record_failure"]
    item: FailedItem


class RunRef(BaseModel):
    """The part of Init's result Summarize reads (the state machine passes all it selected)."""

    model_config = ConfigDict(extra="ignore")
    run_id: str | None = None
    output: str


class MapState(BaseModel):
    """The execution's state as Summarize receives it: `map_error` when the Map itself failed."""

    model_config = ConfigDict(extra="ignore")
    map_error: dict[str, Any] | None = None


class SummarizeEvent(BaseModel):
    """Summarize's event after the Map: `{"action": "summarize", "init": <RunRef>, "state": <MapState>}`."""

    model_config = ConfigDict(extra="ignore")
    action: Literal["summarize"]
    init: RunRef
    state: MapState | None = None


__all__ = [
    "BACKENDS",
    "MAX_BATCH_SIZE",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "UNCERTAINTY_MODES",
    "Backend",
    "ConcretePrecision",
    "FailedItem",
    "FailedShard",
    "FieldProblem",
    "FunctionInfo",
    "InitResult",
    "ItemStatus",
    "MapState",
    "RecordFailureEvent",
    "RunRef",
    "SummarizeEvent",
    "PlanLocation",
    "PlannedShard",
    "Precision",
    "Provenance",
    "ReportError",
    "ShardOutcome",
    "ShardResult",
    "ShardStatus",
    "UncertaintyMode",
    "WorkItem",
    "WorkItemError",
    "WorkerReport",
    "first_problem",
    "item_status",
    "report_errors",
]
