"""Run reports: download a run's files, merge its catalog, draw plots, write report.md.

Used by `cosmicai invoke` (and so `make invoke`). Everything lands in `runs/<run_id>/`:
`summary.json`, `run.json`, `plan.json`, `workers/<item>.json`, `catalog.parquet` (the
run's prediction catalogs concatenated), `plots/*.png` and `report.md`.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmicai.runstore import (
    PLAN_FILE,
    RUN_FILE,
    SUMMARY_FILE,
    WORKERS_DIR,
    RunLocation,
    get_json,
    get_json_if_exists,
    list_objects,
)

READ_THREADS = 16
CATALOG_FILE = "catalog.parquet"
REPORT_FILE = "report.md"
PLOTS_DIR = "plots"


class ReportError(RuntimeError):
    """A run's files cannot be fetched or reported (missing summary, bad catalog)."""


@dataclass
class RunFiles:
    """What `fetch_run` brought home: the documents, and where they now are."""

    run_dir: Path
    summary: dict[str, Any]
    plan: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    catalog_rows: int = 0
    catalog_path: Path | None = None


def _save_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True))


def fetch_run(s3: Any, loc: RunLocation, run_dir: Path, run_id: str | None = None) -> RunFiles:
    """Download summary/run/plan/worker reports of the run at `loc` and merge its catalog.

    Only catalogs of planned shards that the summary counts as predicted are merged, so
    stale files of earlier runs under the same prefix never enter the local catalog.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = get_json_if_exists(s3, loc.bucket, loc.key(SUMMARY_FILE))
    if summary is None:
        raise ReportError(f"{loc.uri}{SUMMARY_FILE} does not exist (the run did not reach Summarize)")
    if run_id is not None and summary.get("run_id") != run_id:
        raise ReportError(f"{loc.uri}{SUMMARY_FILE} belongs to run {summary.get('run_id')}, not {run_id} "
                          "(the run did not reach Summarize)")
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
        reports = [r for r in pool.map(lambda k: get_json(s3, loc.bucket, k), keys)
                   if isinstance(r, dict) and r.get("run_id") == run_id]
    for r in reports:
        _save_json(run_dir / WORKERS_DIR / f"{r['item_id']}.json", r)
    files = RunFiles(run_dir=run_dir, summary=summary, plan=plan, reports=reports)
    failed = {f["shard"] for f in summary.get("shards", {}).get("failures", [])}
    pred_keys = sorted(loc.prediction_key(s["name"]) for item in plan for s in item["shards"] if s["key"] not in failed)
    files.catalog_path, files.catalog_rows = _merge_catalogs(s3, loc.bucket, pred_keys, run_dir / CATALOG_FILE)
    return files


def _merge_catalogs(s3: Any, bucket: str, keys: list[str], dst: Path) -> tuple[Path | None, int]:
    """Concatenate the catalogs at `keys` (in key order) into one parquet file at `dst`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cosmicai.catalog import CatalogError, read_catalog

    if not keys:
        dst.unlink(missing_ok=True)
        return None, 0

    def read(key: str) -> pa.Table:
        try:
            return read_catalog(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except CatalogError as exc:
            raise ReportError(f"s3://{bucket}/{key}: {exc}") from exc

    with ThreadPoolExecutor(READ_THREADS) as pool:
        tables = list(pool.map(read, keys))
    table = pa.concat_tables(tables)
    tmp = dst.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(dst)  # atomic, so a half-written catalog never stays behind
    return dst, table.num_rows


def load_catalog(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object_id, z_pred, z_true) arrays of a merged catalog; z_true is NaN where unknown."""
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    as_np = lambda c, dt: t.column(c).to_numpy(zero_copy_only=False).astype(dt)  # noqa: E731
    return as_np("object_id", np.int64), as_np("z_pred", np.float64), as_np("z_true", np.float64)


def draw_plots(files: RunFiles) -> list[Path]:
    """PNG plots of the run under `plots/`: accuracy (when labels exist) and worker timings."""
    import matplotlib

    matplotlib.use("Agg")  # no display on build machines or Lambda
    import matplotlib.pyplot as plt

    out = files.run_dir / PLOTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if files.catalog_path is not None:
        _, z_pred, z_true = load_catalog(files.catalog_path)
        known = ~np.isnan(z_true)
        if known.any():
            written += _accuracy_plots(plt, out, z_true[known], z_pred[known], files.summary.get("metrics") or {})
    workers = [r for r in files.reports if not r.get("crashed") and r.get("started_at") and r.get("finished_at")]
    if workers:
        written.append(_worker_plot(plt, out, sorted(workers, key=lambda r: r["item_id"])))
    return written


def _metrics_text(m: dict[str, Any]) -> str:
    keys = ("n", "mae", "mse", "bias", "precision", "r2", "outlier_fraction")
    return "\n".join(f"{k} = {m[k]:.4g}" if isinstance(m.get(k), float) else f"{k} = {m.get(k)}" for k in keys if k in m)


def _accuracy_plots(plt: Any, out: Path, z_true: np.ndarray, z_pred: np.ndarray, metrics: dict[str, Any]) -> list[Path]:
    lo = float(min(z_true.min(), z_pred.min()))
    hi = float(max(z_true.max(), z_pred.max()))
    fig, ax = plt.subplots(figsize=(6, 6))
    if len(z_true) >= 500:  # a density plot reads better than overplotted points
        hb = ax.hexbin(z_true, z_pred, gridsize=60, bins="log", mincnt=1, extent=(lo, hi, lo, hi))
        fig.colorbar(hb, ax=ax, label="objects (log)")
    else:
        ax.scatter(z_true, z_pred, s=6, alpha=0.6)
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.set(xlabel="true redshift", ylabel="predicted redshift", title="Predicted vs true redshift", xlim=(lo, hi), ylim=(lo, hi))
    ax.text(0.03, 0.97, _metrics_text(metrics), transform=ax.transAxes, va="top", family="monospace", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8})
    ax.legend(loc="lower right")
    p1 = out / "z_pred_vs_z_true.png"
    fig.savefig(p1, dpi=120, bbox_inches="tight")
    plt.close(fig)

    resid = (z_pred - z_true) / (1.0 + z_true)  # the normalised residual the metrics use
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(resid, bins=min(80, max(10, len(resid) // 10)))
    ax.axvline(0.0, color="k", lw=1)
    ax.set(xlabel="(z_pred - z_true) / (1 + z_true)", ylabel="objects", title="Residuals")
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
    parts = (("init_seconds", "init"), ("download_seconds", "download"), ("compute_seconds", "compute"), ("upload_seconds", "upload"))
    left = np.array(begin) - t0
    for key, label in parts:
        width = np.array([float(r.get(key) or 0.0) for r in workers])
        ax1.barh(y, width, left=left, label=label)
        left = left + width
    ax1.set(yticks=y, yticklabels=[r["item_id"] for r in workers], xlabel="seconds since first worker start", title="Worker timeline")
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
    else:
        rows.append(("metrics", "none (no labelled objects predicted)"))
    rows += [
        ("wall seconds", _fmt(perf.get("wall_seconds"), ".1f")),
        ("objects / s", _fmt(perf.get("objects_per_second"), ".1f")),
        ("workers (cold starts)", f"{perf.get('workers')} ({perf.get('cold_starts')})"),
        ("worker s p50 / p95", f"{_fmt(perf.get('worker_seconds_p50'), '.2f')} / {_fmt(perf.get('worker_seconds_p95'), '.2f')}"),
        ("projected USD (run)", _fmt(cost.get("usd"), ".6f")),
        ("projected USD / 1M objects", _fmt(cost.get("usd_per_million_objects"), ".4f")),
    ]
    return rows


def write_report(files: RunFiles, plots: list[Path]) -> Path:
    """Write `report.md`: results table, failures, warnings, plots; returns its path."""
    s = files.summary
    lines = [f"# Run {s.get('run_id')}: {s.get('status')}", "", f"Input `{s.get('input')}`, output `{s.get('output')}`.", "",
             "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary_rows(s)]
    failures = s.get("shards", {}).get("failures", [])
    if failures:
        lines += ["", "## Failed shards", "", "| shard | error | objects | message |", "|---|---|---|---|"]
        lines += [f"| `{f['shard']}` | {f['error']} | {f.get('objects')} | {str(f.get('message', '')).replace('|', '/')[:300]} |"
                  for f in failures]
    if s.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in s["warnings"]]
    if files.catalog_path is not None:
        lines += ["", f"Catalog: `{CATALOG_FILE}` ({files.catalog_rows} rows: object_id, z_pred, z_true)."]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}]({PLOTS_DIR}/{p.name})" for p in plots]
    path = files.run_dir / REPORT_FILE
    path.write_text("\n".join(lines) + "\n")
    return path


def build_report(s3: Any, loc: RunLocation, run_dir: Path, run_id: str | None = None) -> tuple[RunFiles, list[Path], Path]:
    """fetch_run + draw_plots + write_report, the whole local report of one run."""
    files = fetch_run(s3, loc, run_dir, run_id)
    plots = draw_plots(files)
    return files, plots, write_report(files, plots)
