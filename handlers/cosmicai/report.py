"""Run reports: download a run's files, merge its catalog, draw plots, write report.md.

Used by `cosmicai invoke` (and so `make invoke`). Everything lands in `runs/<run_id>/`:
`summary.json` with `summary/workers.jsonl` and `summary/failures.jsonl`, `run.json`, `plan.json`,
`workers/<item>.json`, `catalog.parquet` (the run's prediction catalogs concatenated),
`plots/*.png` and `report.md`.

The catalog is downloaded only when the run's prediction objects, as listed in S3, add up to
no more than a size limit (2 GB by default). Above it the catalog stays in S3, where
`<output>predictions/` is one Parquet dataset (`in_place_snippet` says how to query it), and
the accuracy plots are drawn from `catalog.sample.parquet`, a few evenly spaced catalogs.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cosmicai.runstore import (
    PLAN_FILE,
    PREDICTIONS_DIR,
    RUN_FILE,
    SUMMARY_FILE,
    WORKERS_DIR,
    RunLocation,
    get_json,
    get_json_if_exists,
    iter_json_lines,
    list_objects,
)

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_s3 import S3Client

READ_THREADS = 16
CATALOG_FILE = "catalog.parquet"
SAMPLE_FILE = "catalog.sample.parquet"
REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
# Above this the merged catalog is not downloaded (decimal GB, as S3 and disks count).
DEFAULT_CATALOG_LIMIT_BYTES = 2 * 1000**3
# Catalogs read for the plots when the catalog stays in S3: enough for a dense hexbin.
SAMPLE_BUDGET_BYTES = 64 * 1000**2
# Points drawn per plot: a hexbin of more looks the same, and float64 copies of a 2 GB
# catalog's columns would need several GB of memory.
PLOT_MAX_POINTS = 2_000_000
# Rows per row group of the merged catalog (one group per shard would bloat its footer).
ROW_GROUP_ROWS = 1_000_000


class ReportError(RuntimeError):
    """A run's files cannot be fetched or reported (missing summary, bad catalog)."""


@dataclass(frozen=True)
class CatalogListing:
    """The run's predicted catalogs (keys in key order) and their sizes as S3 lists them."""

    uri: str  # s3://bucket/prefix/predictions/
    keys: list[str]
    sizes: dict[str, int]

    @property
    def bytes(self) -> int:
        return sum(self.sizes[k] for k in self.keys)


@dataclass(frozen=True)
class CatalogInPlace:
    """A catalog left in S3 because it is over the download limit; `sample_*` feed the plots."""

    uri: str
    bytes: int
    files: int
    limit: int
    sample_files: int = 0
    sample_rows: int = 0


@dataclass
class RunFiles:
    """What `fetch_run` brought home: the documents, and where they now are."""

    run_dir: Path
    summary: dict[str, Any]
    plan: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)  # every failed shard (summary/failures.jsonl)
    catalog_rows: int = 0
    catalog_path: Path | None = None
    in_place: CatalogInPlace | None = None  # set instead of catalog_path above the limit
    sample_path: Path | None = None  # the catalogs the plots were drawn from, above the limit

    @property
    def plot_catalog(self) -> Path | None:
        """The local catalog the accuracy plots read: the whole one, else the sample."""
        return self.catalog_path or self.sample_path


def format_bytes(n: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as the limit is given)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def should_download(catalog_bytes: int, limit: int | None) -> bool:
    """Whether a catalog of `catalog_bytes` (listed sizes) is downloaded: at or below the limit,
    or always when there is no limit (None)."""
    return limit is None or catalog_bytes <= limit


def list_catalogs(s3: S3Client, loc: RunLocation, keys: Sequence[str]) -> CatalogListing:
    """Sizes of the catalogs at `keys` from one listing of `predictions/` (no object is read);
    ReportError if one of them is not there."""
    listed = {o["Key"]: int(o["Size"]) for o in list_objects(s3, loc.bucket, loc.key(PREDICTIONS_DIR))}
    missing = [k for k in keys if k not in listed]
    if missing:
        raise ReportError(
            f"{len(missing)} catalog(s) of predicted shards are not in s3://{loc.bucket}/"
            f"{loc.key(PREDICTIONS_DIR)}, e.g. {missing[0]} (deleted after the run?)"
        )
    return CatalogListing(uri=loc.uri + PREDICTIONS_DIR, keys=sorted(keys), sizes={k: listed[k] for k in keys})


def sample_keys(listing: CatalogListing, budget_bytes: int = SAMPLE_BUDGET_BYTES) -> list[str]:
    """Evenly spaced catalogs whose sizes add up to about `budget_bytes` (at least one), so the
    sample spans the whole input rather than its first shards."""
    keys = listing.keys
    if not keys:
        return []
    mean = max(1, listing.bytes // len(keys))
    want = max(1, min(len(keys), budget_bytes // mean))
    step = len(keys) / want
    return [keys[int(i * step)] for i in range(want)]


def in_place_snippet(uri: str, endpoint: str | None = None, region: str | None = None) -> str:
    """Python that reads the catalog dataset at `uri` (s3://bucket/prefix/predictions/) from S3
    with pyarrow.dataset; `endpoint` (e.g. the local cloud's http://127.0.0.1:4566) when not AWS."""
    path = uri.removeprefix("s3://")  # with an explicit filesystem pyarrow wants bucket/key, not a URI
    args = [f"region={region!r}"] if region else []
    if endpoint:
        scheme, _, host = endpoint.rstrip("/").rpartition("://")
        args += [f"endpoint_override={host!r}", f"scheme={scheme or 'https'!r}"]
    return "\n".join(
        [
            "import pyarrow.dataset as ds, pyarrow.fs as fs",
            f"s3 = fs.S3FileSystem({', '.join(args)})",
            f'catalog = ds.dataset({path!r}, format="parquet", filesystem=s3)',
            'table = catalog.to_table(columns=["object_id", "z_pred", "z_true"])  # or .filter(ds.field("z_pred") > 1)',
        ]
    )


def _save_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True))


def fetch_run(
    s3: S3Client,
    loc: RunLocation,
    run_dir: Path,
    run_id: str | None = None,
    catalog_limit: int | None = DEFAULT_CATALOG_LIMIT_BYTES,
) -> RunFiles:
    """Download summary/run/plan/worker reports of the run at `loc` and merge its catalog
    when its listed size is at most `catalog_limit` bytes (None: always); else leave it in
    S3 (`RunFiles.in_place`) and download a sample of it for the plots.

    Only catalogs of planned shards that the summary counts as predicted are merged, so
    stale files of earlier runs under the same prefix never enter the local catalog.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = get_json_if_exists(s3, loc.bucket, loc.key(SUMMARY_FILE))
    if summary is None:
        raise ReportError(f"{loc.uri}{SUMMARY_FILE} does not exist (the run did not reach Summarize)")
    if run_id is not None and summary.get("run_id") != run_id:
        raise ReportError(
            f"{loc.uri}{SUMMARY_FILE} belongs to run {summary.get('run_id')}, not {run_id} "
            "(the run did not reach Summarize)"
        )
    _save_json(run_dir / SUMMARY_FILE, summary)
    run_id = summary.get("run_id")
    docs: dict[str, Any] = {}
    for name in (RUN_FILE, PLAN_FILE):
        docs[name] = get_json_if_exists(s3, loc.bucket, loc.key(name))
        if docs[name] is not None:
            _save_json(run_dir / name, docs[name])
    plan = docs[PLAN_FILE] or []
    keys = [o["Key"] for o in list_objects(s3, loc.bucket, loc.key(WORKERS_DIR)) if o["Key"].endswith(".json")]
    with ThreadPoolExecutor(READ_THREADS) as pool:
        reports = [
            r
            for r in pool.map(lambda k: get_json(s3, loc.bucket, k), keys)
            if isinstance(r, dict) and r.get("run_id") == run_id
        ]
    for r in reports:
        _save_json(run_dir / WORKERS_DIR / f"{r['item_id']}.json", r)
    files = RunFiles(
        run_dir=run_dir, summary=summary, plan=plan, reports=reports, failures=_failures(s3, loc, summary, run_dir)
    )
    failed = {f["shard"] for f in files.failures}
    pred_keys = sorted(loc.prediction_key(s["name"]) for item in plan for s in item["shards"] if s["key"] not in failed)
    listing = list_catalogs(s3, loc, pred_keys)
    # Files of an earlier fetch of the same run id must not pass for this one's.
    for stale in (CATALOG_FILE, SAMPLE_FILE):
        (run_dir / stale).unlink(missing_ok=True)
    if should_download(listing.bytes, catalog_limit):
        files.catalog_rows = _merge_catalogs(s3, loc.bucket, listing.keys, run_dir / CATALOG_FILE)
        files.catalog_path = run_dir / CATALOG_FILE if listing.keys else None
        return files
    assert catalog_limit is not None  # should_download is true without a limit
    sample = sample_keys(listing)
    sample_rows = _merge_catalogs(s3, loc.bucket, sample, run_dir / SAMPLE_FILE)
    files.sample_path = run_dir / SAMPLE_FILE
    files.in_place = CatalogInPlace(
        uri=listing.uri,
        bytes=listing.bytes,
        files=len(listing.keys),
        limit=catalog_limit,
        sample_files=len(sample),
        sample_rows=sample_rows,
    )
    return files


def _failures(s3: S3Client, loc: RunLocation, summary: dict[str, Any], run_dir: Path) -> list[dict[str, Any]]:
    """Every failed shard: summary.json lists the first FAILURES_LISTED, `shards.failures_file` all of
    them (saved beside summary.json, as are the per-worker rows). A summary without that file (older
    runs) listed all of them itself."""
    shards = summary.get("shards", {})
    if not shards.get("failures_file"):
        return list(shards.get("failures", []))
    for name in (shards["failures_file"], (summary.get("performance") or {}).get("per_worker_file")):
        if name:
            dst = run_dir / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            with dst.open("w") as f:
                f.writelines(json.dumps(doc) + "\n" for doc in iter_json_lines(s3, loc.bucket, loc.key(name)))
    with (run_dir / shards["failures_file"]).open() as f:
        return [json.loads(line) for line in f if line.strip()]


def _read_in_order(read: Callable[[str], Any], keys: Sequence[str], window: int = 2 * READ_THREADS) -> Iterator[Any]:
    """`read(key)` for every key, in key order, at most `window` reads ahead: parallel GETs
    with memory bounded by the window, not by the catalog."""
    with ThreadPoolExecutor(READ_THREADS) as pool:
        todo = iter(keys)
        # the first `window` keys (zip stops at the shorter: fewer keys than the window is fine)
        pending: deque[Future[Any]] = deque(pool.submit(read, k) for k, _ in zip(todo, range(window), strict=False))
        while pending:
            result = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(read, nxt))
            yield result


def _merge_catalogs(s3: S3Client, bucket: str, keys: Sequence[str], dst: Path) -> int:
    """Stream the catalogs at `keys` (in key order) into one Parquet file at `dst`; returns
    its rows. Writes nothing for no keys."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cosmicai.catalog import CatalogError, read_catalog

    if not keys:
        return 0

    def read(key: str) -> pa.Table:
        try:
            return read_catalog(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except CatalogError as exc:
            raise ReportError(f"s3://{bucket}/{key}: {exc}") from exc

    tmp = dst.with_suffix(".parquet.tmp")
    rows, buffered, buffered_rows = 0, [], 0
    tables = _read_in_order(read, keys)
    first = next(tables)  # its schema: the catalog's, with the uncertainty columns when the run has them
    with pq.ParquetWriter(tmp, first.schema, compression="zstd") as writer:
        for table in itertools.chain([first], tables):
            buffered.append(table)
            buffered_rows += table.num_rows
            if buffered_rows >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(buffered), row_group_size=ROW_GROUP_ROWS)
                rows, buffered, buffered_rows = rows + buffered_rows, [], 0
        if buffered:
            writer.write_table(pa.concat_tables(buffered), row_group_size=ROW_GROUP_ROWS)
            rows += buffered_rows
    tmp.replace(dst)  # atomic, so a half-written catalog never stays behind
    return rows


def _cell(text: object, limit: int = 300) -> str:
    """Text fit for one Markdown table cell: no column separators, at most `limit` characters."""
    return str(text).replace("|", "/")[:limit]


def plot_points(path: Path, max_points: int = PLOT_MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(z_true, z_pred) of every k-th row of a catalog, at most about `max_points` rows, read
    batch by batch so a catalog of any size fits in memory; z_true is NaN where unknown."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    stride = max(1, -(-f.metadata.num_rows // max_points))
    true_parts: list[np.ndarray] = []
    pred_parts: list[np.ndarray] = []
    offset = 0
    for batch in f.iter_batches(columns=["z_true", "z_pred"], batch_size=65_536):
        first = (-offset) % stride  # keep rows whose catalog index is a multiple of the stride
        for name, parts in (("z_true", true_parts), ("z_pred", pred_parts)):
            parts.append(batch.column(name).to_numpy(zero_copy_only=False).astype(np.float64)[first::stride])
        offset += batch.num_rows
    if not true_parts:
        return np.empty(0), np.empty(0)
    return np.concatenate(true_parts), np.concatenate(pred_parts)


def draw_plots(files: RunFiles) -> list[Path]:
    """PNG plots of the run under `plots/`: accuracy (when labels exist) and worker timings."""
    import matplotlib

    matplotlib.use("Agg")  # no display on build machines or Lambda
    import matplotlib.pyplot as plt

    out = files.run_dir / PLOTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if files.plot_catalog is not None:
        z_true, z_pred = plot_points(files.plot_catalog)
        known = ~np.isnan(z_true)
        if known.any():
            written += _accuracy_plots(
                plt, out, z_true[known], z_pred[known], files.summary.get("metrics") or {}, _sample_note(files)
            )
    workers = [r for r in files.reports if not r.get("crashed") and r.get("started_at") and r.get("finished_at")]
    if workers:
        written.append(_worker_plot(plt, out, sorted(workers, key=lambda r: r["item_id"])))
    return written


def _metrics_text(m: dict[str, Any]) -> str:
    keys = ("n", "mae", "mse", "bias", "precision", "r2", "outlier_fraction")
    lines = [f"{k} = {m[k]:.4g}" if isinstance(m.get(k), float) else f"{k} = {m.get(k)}" for k in keys if k in m]
    rail = m.get("rail")
    if isinstance(rail, dict):  # LSST DESC RAIL's point metrics, labelled as such
        lines += ["RAIL (ez = dz/(1+z)):"] + [
            f"RAIL {k} = {rail[k]:.4g}" for k in RAIL_ROWS if isinstance(rail.get(k), float)
        ]
    return "\n".join(lines)


# RAIL's point metrics (summary.json metrics.rail), shown beside the reference's and labelled RAIL.
RAIL_ROWS = ("bias", "sigma_iqr", "sigma_mad", "outlier_rate")


def _sample_note(files: RunFiles) -> str:
    """What the accuracy plots show when that is not the whole catalog ('' when it is)."""
    ip = files.in_place
    if ip is None:
        return ""
    return f"sample: {ip.sample_files} of {ip.files} catalogs"


def _accuracy_plots(
    plt: Any, out: Path, z_true: np.ndarray, z_pred: np.ndarray, metrics: dict[str, Any], note: str = ""
) -> list[Path]:
    lo = float(min(z_true.min(), z_pred.min()))
    hi = float(max(z_true.max(), z_pred.max()))
    fig, ax = plt.subplots(figsize=(6, 6))
    if len(z_true) >= 500:  # a density plot reads better than overplotted points
        hb = ax.hexbin(z_true, z_pred, gridsize=60, bins="log", mincnt=1, extent=(lo, hi, lo, hi))
        fig.colorbar(hb, ax=ax, label="objects (log)")
    else:
        ax.scatter(z_true, z_pred, s=6, alpha=0.6)
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    title = "Predicted vs true redshift" + (f" ({note}; metrics: whole run)" if note else "")
    if metrics.get("rail"):
        title += "\nreference metrics and RAIL point metrics"
    ax.set(xlabel="true redshift", ylabel="predicted redshift", title=title, xlim=(lo, hi), ylim=(lo, hi))
    ax.text(
        0.03,
        0.97,
        _metrics_text(metrics),
        transform=ax.transAxes,
        va="top",
        family="monospace",
        fontsize=8,
        bbox={"facecolor": "white", "alpha": 0.8},
    )
    ax.legend(loc="lower right")
    p1 = out / "z_pred_vs_z_true.png"
    fig.savefig(p1, dpi=120, bbox_inches="tight")
    plt.close(fig)

    resid = (z_pred - z_true) / (1.0 + z_true)  # the normalised residual the metrics use
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(resid, bins=min(80, max(10, len(resid) // 10)))
    ax.axvline(0.0, color="k", lw=1)
    ax.set(
        xlabel="(z_pred - z_true) / (1 + z_true)", ylabel="objects", title="Residuals" + (f" ({note})" if note else "")
    )
    p2 = out / "residuals.png"
    fig.savefig(p2, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return [p1, p2]


def _worker_plot(plt: Any, out: Path, workers: list[dict[str, Any]]) -> Path:
    # a cold worker's init (imports, weights) happened before its handler stamped started_at
    begin = [float(r["started_at"]) - float(r.get("init_seconds") or 0.0) for r in workers]
    t0 = min(begin)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, max(3, 0.25 * len(workers) + 1.5)))
    y = np.arange(len(workers))
    parts = (
        ("init_seconds", "init"),
        ("download_seconds", "download"),
        ("compute_seconds", "compute"),
        ("upload_seconds", "upload"),
    )
    left = np.array(begin) - t0
    for key, label in parts:
        width = np.array([float(r.get(key) or 0.0) for r in workers])
        ax1.barh(y, width, left=left, label=label)
        left = left + width
    ax1.set(
        yticks=y,
        yticklabels=[r["item_id"] for r in workers],
        xlabel="seconds since first worker start",
        title="Worker timeline",
    )
    ax1.invert_yaxis()
    ax1.legend(fontsize=7)
    rates = [float(r.get("objects_per_second") or 0.0) for r in workers]
    ax2.barh(y, rates, color="tab:green")
    ax2.set(yticks=y, yticklabels=[], xlabel="objects / s (wall)", title="Per-worker throughput")
    ax2.invert_yaxis()
    p = out / "workers.png"
    fig.savefig(p, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return p


def _fmt(v: Any, spec: str = ".4g") -> str:
    if v is None:
        return "-"
    return format(v, spec) if isinstance(v, float) else str(v)


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) rows of the results table, shared by the terminal and report.md."""
    o, s = summary.get("objects", {}), summary.get("shards", {})
    perf, cost = summary.get("performance") or {}, summary.get("cost") or {}
    rows = [
        ("run", str(summary.get("run_id"))),
        ("status", str(summary.get("status"))),
        ("objects", f"{o.get('total')} total = {o.get('predicted')} predicted + {o.get('failed')} failed"),
        ("shards", f"{s.get('total')} total, {s.get('succeeded')} succeeded, {s.get('failed')} failed"),
    ]
    m = summary.get("metrics")
    if m:
        rows += [(k, _fmt(m.get(k))) for k in ("n", "mae", "mse", "bias", "precision", "r2", "outlier_fraction")]
        rail = m.get("rail") or {}
        rows += [(f"RAIL {k}", _fmt(rail.get(k))) for k in RAIL_ROWS if k in rail]
        if "coverage_68" in m:  # uncertainty tta8: the share of labelled objects within their z_err
            rows.append(("coverage_68 (z_err)", f"{_fmt(m['coverage_68'])} of {m['coverage_68_n']} objects"))
    else:
        rows.append(("metrics", "none (no labelled objects predicted)"))
    rows += [
        ("wall seconds", _fmt(perf.get("wall_seconds"), ".1f")),
        ("objects / s", _fmt(perf.get("objects_per_second"), ".1f")),
        ("workers (cold starts)", f"{perf.get('workers')} ({perf.get('cold_starts')})"),
        (
            "worker s p50 / p95",
            f"{_fmt(perf.get('worker_seconds_p50'), '.2f')} / {_fmt(perf.get('worker_seconds_p95'), '.2f')}",
        ),
        ("projected USD (run)", _fmt(cost.get("usd"), ".6f")),
        ("projected USD / 1M objects", _fmt(cost.get("usd_per_million_objects"), ".4f")),
    ]
    return rows


def write_report(files: RunFiles, plots: list[Path]) -> Path:
    """Write `report.md`: results table, failures, warnings, plots; returns its path."""
    s = files.summary
    lines = [
        f"# Run {s.get('run_id')}: {s.get('status')}",
        "",
        f"Input `{s.get('input')}`, output `{s.get('output')}`.",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in summary_rows(s)]
    failures = files.failures
    if failures:
        lines += ["", "## Failed shards", "", "| shard | error | objects | message |", "|---|---|---|---|"]
        lines += [
            f"| `{f['shard']}` | {f['error']} | {f.get('objects')} | {_cell(f.get('message', ''))} |" for f in failures
        ]
    if s.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in s["warnings"]]
    if files.catalog_path is not None:
        lines += ["", f"Catalog: `{CATALOG_FILE}` ({files.catalog_rows} rows: object_id, z_pred, z_true)."]
    if files.in_place is not None:
        lines += [
            "",
            "## Catalog in S3",
            "",
            in_place_text(files.in_place),
            "",
            "```python",
            in_place_snippet(files.in_place.uri, *client_endpoint()),
            "```",
        ]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({PLOTS_DIR}/{p.name})" for p in plots]
    path = files.run_dir / REPORT_FILE
    path.write_text("\n".join(lines) + "\n")
    return path


def in_place_text(ip: CatalogInPlace) -> str:
    """One paragraph: why the catalog was not downloaded and where it is."""
    return (
        f"Not downloaded: {format_bytes(ip.bytes)} in {ip.files} Parquet files, over the {format_bytes(ip.limit)} "
        f"download limit (`--catalog-download-limit`, `make invoke CATALOG_DOWNLOAD_LIMIT=`). It is one Parquet "
        f"dataset in place at `{ip.uri}`. The accuracy plots show `{SAMPLE_FILE}` ({ip.sample_rows} rows from "
        f"{ip.sample_files} evenly spaced catalogs); the metrics cover the whole run."
    )


def client_endpoint() -> tuple[str | None, str | None]:
    """(endpoint, region) the user's clients use: AWS_ENDPOINT_URL (the local cloud) and AWS_REGION."""
    return (
        os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"),
        os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
    )


def build_report(
    s3: S3Client,
    loc: RunLocation,
    run_dir: Path,
    run_id: str | None = None,
    catalog_limit: int | None = DEFAULT_CATALOG_LIMIT_BYTES,
) -> tuple[RunFiles, list[Path], Path]:
    """fetch_run + draw_plots + write_report, the whole local report of one run."""
    files = fetch_run(s3, loc, run_dir, run_id, catalog_limit)
    plots = draw_plots(files)
    return files, plots, write_report(files, plots)
