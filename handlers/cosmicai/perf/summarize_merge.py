"""Summarize at the limits: merging 1,000 and 40,000 work items' metric partials, measured.

    python -m cosmicai.perf.summarize_merge [--items 1000,40000] [--objects-per-item 5000]
        [--get-latency-ms 0] [--out bench]

Each size runs in a fresh interpreter (peak RSS = procstats.peak_rss_mb, VmHWM, of that process
alone), in two modes:

- `merge`: `summary.PartialMerge` alone: one bounded stream of partial GETs into one
  `MetricAccumulator`.
- `summarize`: the whole `summarize_run` (run/plan/report reads, listings, accounting, the merge,
  summary.json and its per-worker and failure files), streaming the plan and the reports.

The S3 double serves a synthetic run: every object is generated on request from a small pool
(64 distinct partial sections of real `MetricPartial`s of `--objects-per-item` SDSS-like objects,
so each GET returns a realistic ~8 KB partial), so the double itself holds nothing that grows
with the run and the figures are Summarize's own. `--get-latency-ms` sleeps in every GET (S3's
latency; Summarize's 16 read threads overlap it, as on Lambda). Writes `<out>/summarize.json`; `make bench-report`
(perf/report.py) renders it as a section of REPORT.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_s3 import S3Client

RUN_ID = "bench-summarize"
BUCKET = "bench"
PREFIX = "r/"
POOL = 64
DEFAULT_ITEMS = (1000, 40_000)
# The reference's 100 MB partition is 5,113 objects; issue 15 sizes items at ~5,000.
DEFAULT_OBJECTS = 5000
LAMBDA_MAX_MB = 10_240
LAMBDA_MAX_S = 900


def _pool_sections(objects: int, shards_per_item: int, seed: int = 15) -> list[str]:
    """JSON bodies (without the key) of POOL partial sections of objects/shards_per_item objects each."""
    import numpy as np

    from cosmicai.metrics import MetricPartial, ShardPartial, partials_to_bytes

    rng = np.random.default_rng(seed)
    n = max(1, objects // shards_per_item)
    bodies = []
    for _ in range(POOL):
        z = rng.uniform(0.02, 0.6, n).astype(np.float32)
        delta = rng.normal(0.0, 0.02, n)  # the demo model's MAE is ~0.02
        out = rng.uniform(size=n) < 0.03  # catastrophic outliers, some beyond |delta| = 1
        delta[out] = rng.uniform(-0.5, 1.5, int(out.sum()))
        p = (z + delta * (1 + z)).astype(np.float32)
        doc = json.loads(partials_to_bytes("r", "i", [ShardPartial("k", n, MetricPartial.from_pairs(z, p))]))
        section = doc["shards"][0]
        del section["key"]
        bodies.append(json.dumps(section, separators=(",", ":"), allow_nan=False))
    return bodies


class _GeneratedBody:
    """A streaming body read from a generator of byte strings (botocore's StreamingBody.read)."""

    def __init__(self, parts: Iterator[bytes]) -> None:
        self.parts, self.buf = parts, b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buf) < n:
            part = next(self.parts, None)
            if part is None:
                break
            self.buf += part
        out, self.buf = (self.buf, b"") if n < 0 else (self.buf[:n], self.buf[n:])
        return out


class SyntheticRunS3:
    """An S3 double serving one finished run of `items` work items, generated on request.

    Implements what Summarize calls: list_objects_v2 (MaxKeys), get_paginator("list_objects_v2"),
    get_object and put_object. Nothing it holds grows with the run.
    """

    PAGE = 1000

    def __init__(self, items: int, objects: int, shards_per_item: int = 1, get_latency_s: float = 0.0) -> None:
        self.items, self.spi = items, shards_per_item
        self.per_shard = max(1, objects // shards_per_item)
        self.latency = get_latency_s
        self.bodies = _pool_sections(objects, shards_per_item)
        self.gets = 0
        self.put_bytes: dict[str, int] = {}
        from cosmicai.metrics import partials_to_bytes

        # the file's head (format, version, grid, run and item id) as the workers write it, open at the end
        head = json.loads(partials_to_bytes(RUN_ID, "ITEM", []))
        self._head = json.dumps({k: v for k, v in head.items() if k != "shards"}, separators=(",", ":"))[:-1]

    # keys -------------------------------------------------------------------------------------
    @staticmethod
    def item_id(i: int) -> str:
        return f"item-{i:05d}"

    @staticmethod
    def shard_name(j: int) -> str:
        return f"part-{j:06d}"

    def _keys(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix`, in S3's (lexicographic) order within each folder (all Summarize lists)."""
        folders: dict[str, Callable[[int], list[str]]] = {
            f"{PREFIX}metrics/": lambda i: [f"{PREFIX}metrics/{self.item_id(i)}.json"],
            f"{PREFIX}predictions/": lambda i: [
                f"{PREFIX}predictions/{self.shard_name(i * self.spi + k)}.parquet" for k in range(self.spi)
            ],
            f"{PREFIX}workers/": lambda i: [f"{PREFIX}workers/{self.item_id(i)}.json"],
        }
        for folder, keys in folders.items():
            if folder.startswith(prefix) or prefix.startswith(folder):
                for i in range(self.items):
                    yield from (k for k in keys(i) if k.startswith(prefix))
        for name in ("plan.json", "run.json", "summary.json"):
            key = PREFIX + name
            if key.startswith(prefix) and (name != "summary.json" or key in self.put_bytes):
                yield key

    def list_objects_v2(self, Bucket: str, Prefix: str = "", MaxKeys: int = 1000) -> dict[str, Any]:
        keys = [{"Key": k, "Size": 1} for k, _ in zip(self._keys(Prefix), range(MaxKeys), strict=False)]
        return {"Contents": keys} if keys else {"KeyCount": 0}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        s3 = self

        class _Paginator:
            def paginate(self, Bucket: str, Prefix: str = "") -> Iterator[dict[str, Any]]:
                page: list[dict[str, Any]] = []
                for key in s3._keys(Prefix):
                    page.append({"Key": key, "Size": 1})
                    if len(page) == s3.PAGE:
                        yield {"Contents": page}
                        page = []
                yield {"Contents": page} if page else {}

        return _Paginator()

    # objects ----------------------------------------------------------------------------------
    def _shard(self, j: int) -> dict[str, Any]:
        name = self.shard_name(j)
        return {"key": f"in/{name}.safetensors", "name": name, "bytes": 100_000_000, "count": self.per_shard}

    def _plan_item(self, i: int) -> dict[str, Any]:
        return {
            "item_id": self.item_id(i),
            "run_id": RUN_ID,
            "input_bucket": "data",
            "output": f"s3://{BUCKET}/{PREFIX}",
            "batch_size": 512,
            "precision": "int8",
            "objects": self.per_shard * self.spi,
            "shards": [self._shard(i * self.spi + k) for k in range(self.spi)],
        }

    def _plan_text(self) -> Iterator[bytes]:
        """plan.json as put_json writes it, one item at a time (the double never holds the whole plan)."""
        yield b"["
        for i in range(self.items):
            yield (b"," if i else b"") + json.dumps(self._plan_item(i), separators=(",", ":")).encode()
        yield b"]"

    def _report(self, i: int) -> dict[str, Any]:
        n = self.per_shard
        shards = [
            {
                "key": s["key"],
                "name": s["name"],
                "download_s": 0.9,
                "status": "succeeded",
                "objects": n,
                "labelled": True,
                "prediction_key": f"{PREFIX}predictions/{s['name']}.parquet",
                "compute_s": 7.3,
                "upload_s": 0.05,
                "objects_per_second": 700.0,
            }
            for s in (self._shard(i * self.spi + k) for k in range(self.spi))
        ]
        wall = 8.4 * self.spi
        return {
            "run_id": RUN_ID,
            "item_id": self.item_id(i),
            "status": "succeeded",
            "cold_start": i % 50 == 0,
            "init_seconds": 1.43,
            "engine_seconds": 0.4,
            "download_seconds": 0.9 * self.spi,
            "compute_seconds": 7.3 * self.spi,
            "upload_seconds": 0.06 * self.spi,
            "wall_seconds": wall,
            "objects": n * self.spi,
            "objects_per_second": round(n * self.spi / wall, 2),
            "compute_objects_per_second": 700.0,
            "peak_rss_mb": 912.0,
            "cpus": 1,
            "batch_size": 512,
            "precision": "int8",
            "started_at": 1000.0 + i * 0.01,
            "finished_at": 1008.4 + i * 0.01,
            "function": {"memory_mb": 1769, "name": "cosmicai-infer", "request_id": f"req-{i}"},
            "shards": shards,
            "errors": [],
        }

    def _partial(self, i: int) -> bytes:
        sections = ",".join(
            '{"key":' + json.dumps(self._shard(j)["key"]) + "," + self.bodies[j % POOL][1:]
            for j in range(i * self.spi, (i + 1) * self.spi)
        )
        return (self._head.replace('"ITEM"', json.dumps(self.item_id(i))) + ',"shards":[' + sections + "]}").encode()

    def get_object(self, Bucket: str, Key: str, Range: str | None = None) -> dict[str, Any]:
        import io

        self.gets += 1
        if self.latency:
            time.sleep(self.latency)
        rel = Key.removeprefix(PREFIX)
        if rel == "run.json":
            body = json.dumps(
                {"run_id": RUN_ID, "started_at": 1000.0, "payload": {"input": "s3://data/in/"}, "warnings": []}
            ).encode()
        elif rel == "plan.json":
            return {"Body": _GeneratedBody(self._plan_text())}
        elif rel.startswith("workers/"):
            body = json.dumps(self._report(int(rel.split("-")[1].split(".")[0]))).encode()
        elif rel.startswith("metrics/"):
            body = self._partial(int(rel.split("-")[1].split(".")[0]))
        else:
            raise KeyError(f"the synthetic run serves no {Key}")
        return {"Body": io.BytesIO(body)}

    def put_object(self, Bucket: str, Key: str, Body: Any, **_: Any) -> dict[str, Any]:
        """Counts the bytes; a file body (summary/*.jsonl) is read in chunks, as botocore sends it."""
        if hasattr(Body, "read"):
            size = 0
            while chunk := Body.read(1 << 16):
                size += len(chunk)
        else:
            size = len(Body)
        self.put_bytes[Key] = size
        return {}


def _rss_mb() -> float:
    """Current resident set (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_one(mode: str, items: int, objects: int, shards_per_item: int, latency_s: float) -> dict[str, Any]:
    """One measurement in this process (call in a fresh interpreter: peak RSS is the process's)."""
    from cosmicai.contracts import ShardOutcome, WorkItem
    from cosmicai.procstats import peak_rss_mb
    from cosmicai.runstore import SUMMARY_WORKERS_FILE, RunLocation
    from cosmicai.summary import READ_THREADS, AccountedItem, PartialMerge, stream_map, summarize_run

    s3 = SyntheticRunS3(items, objects, shards_per_item, latency_s)
    # Summarize takes an S3Client; the double answers the four calls it makes (see its docstring).
    client = cast("S3Client", s3)
    loc = RunLocation(BUCKET, PREFIX)
    sample = len(s3._partial(0))
    if mode == "merge":
        # the accounted items, as `RunReports.accounted` makes them, streamed: the merge's own memory
        # is measured, not that of reading the plan and the reports (the `summarize` mode counts those)
        entries = (
            AccountedItem(
                WorkItem.model_validate(s3._plan_item(i)),
                None,
                [
                    ShardOutcome(
                        item_id=s3.item_id(i),
                        key=s["key"],
                        name=s["name"],
                        status="succeeded",
                        objects=s["count"],
                        prediction_key=loc.prediction_key(s["name"]),
                    )
                    for s in (s3._shard(i * shards_per_item + k) for k in range(shards_per_item))
                ],
            )
            for i in range(items)
        )
    rss_before = _rss_mb()
    t0 = time.perf_counter()
    if mode == "merge":
        merge = PartialMerge(client, loc, RUN_ID)
        for entry, sections, why in stream_map(merge.read, entries):
            merge.add(entry, sections, why)
        metrics, source, labelled = merge.acc.compute(), merge.source(), merge.labelled
    else:
        summary = summarize_run(client, loc, RUN_ID, now=2000.0)
        metrics, source, labelled = summary["metrics"], summary["metrics_source"], summary["objects"]["labelled"]
    seconds = time.perf_counter() - t0
    return {
        "mode": mode,
        "items": items,
        "shards": items * shards_per_item,
        "objects": labelled,
        "metrics_n": metrics["n"],
        "partials": source["partials"],
        "shards_from_catalogs": source["shards_from_catalogs"],
        "partial_bytes": sample,
        "gets": s3.gets,
        "read_threads": READ_THREADS,
        "get_latency_ms": latency_s * 1e3,
        "seconds": round(seconds, 2),
        "rss_before_mb": round(rss_before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "summary_json_bytes": s3.put_bytes.get(loc.key("summary.json")),
        "workers_jsonl_bytes": s3.put_bytes.get(loc.key(SUMMARY_WORKERS_FILE)),
    }


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _run_child(mode: str, items: int, objects: int, shards_per_item: int, latency_ms: float) -> dict[str, Any]:
    """One row, measured in a fresh interpreter (a spawned process: its VmHWM is its own, not this one's)."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure_one, (mode, items, objects, shards_per_item, latency_ms / 1e3))


def run_all(
    items: tuple[int, ...],
    objects: int,
    shards_per_item: int,
    latencies_ms: tuple[float, ...],
    modes: tuple[str, ...] = ("merge", "summarize"),
) -> list[dict[str, Any]]:
    """Each (latency, mode, size) in a fresh interpreter; rows in that order."""
    rows = []
    for latency_ms in latencies_ms:
        for mode in modes:
            for n in items:
                row = _run_child(mode, n, objects, shards_per_item, latency_ms)
                print(
                    f"{mode:9s} {n:>6,} items, {latency_ms:g} ms/GET: {row['seconds']:8.2f} s, peak RSS "
                    f"{row['peak_rss_mb']:7.1f} MiB (before {row['rss_before_mb']:.1f}), {row['objects']:,} objects",
                    flush=True,
                )
                rows.append(row)
    return rows


def verdicts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per mode: peak memory at the largest size against the smallest at each simulated latency
    (target within 20% at every one), and whether the slowest largest row fits a Lambda's limits."""
    out: dict[str, Any] = {}
    for mode in sorted({r["mode"] for r in rows}):
        mine = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["items"])
        small, large = mine[0]["items"], mine[-1]["items"]
        ratios = {}
        for latency in dict.fromkeys(r["get_latency_ms"] for r in mine):
            lo = next(r for r in mine if r["items"] == small and r["get_latency_ms"] == latency)
            hi = next(r for r in mine if r["items"] == large and r["get_latency_ms"] == latency)
            ratios[f"{latency:g}"] = round(hi["peak_rss_mb"] / lo["peak_rss_mb"], 3)
        worst = max((r for r in mine if r["items"] == large), key=lambda r: (r["seconds"], r["peak_rss_mb"]))
        out[mode] = {
            "items": [small, large],
            "peak_ratio": max(ratios.values(), key=lambda x: abs(x - 1)),
            "peak_ratio_by_latency_ms": ratios,
            "within_20_percent": all(abs(x - 1) <= 0.2 for x in ratios.values()),
            "within_lambda": worst["peak_rss_mb"] < LAMBDA_MAX_MB and worst["seconds"] < LAMBDA_MAX_S,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m cosmicai.perf.summarize_merge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--items", default=",".join(map(str, DEFAULT_ITEMS)), help="work-item counts (default 1000,40000)")
    p.add_argument(
        "--objects-per-item", type=int, default=DEFAULT_OBJECTS, help="labelled objects per item (default 5000)"
    )
    p.add_argument("--shards-per-item", type=int, default=1)
    p.add_argument("--get-latency-ms", default="0", help="sleep per GET, as S3's latency; a list runs each (default 0)")
    p.add_argument("--modes", default="merge,summarize")
    p.add_argument("--out", type=Path, default=Path("bench"), help="folder for summarize.json (default bench/)")
    args = p.parse_args(argv)
    from cosmicai.procstats import cpu_info

    load0 = os.getloadavg()[0]
    latencies = tuple(float(x) for x in args.get_latency_ms.split(",") if x.strip())
    rows = run_all(
        _ints(args.items),
        args.objects_per_item,
        args.shards_per_item,
        latencies,
        tuple(m for m in args.modes.split(",") if m),
    )
    doc = {
        "kind": "summarize merge at the limits (issue 15)",
        "created_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python -m cosmicai.perf.summarize_merge " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "cpu_model": cpu_info()[0],
            "cpus": os.cpu_count(),
            "load_avg_start": round(load0, 2),
            "load_avg_end": round(os.getloadavg()[0], 2),
        },
        "config": {
            "objects_per_item": args.objects_per_item,
            "shards_per_item": args.shards_per_item,
            "get_latency_ms": list(latencies),
            "pool": POOL,
        },
        "rows": rows,
        "verdicts": verdicts(rows),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "summarize.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}; `make bench-report` renders it into {args.out / 'REPORT.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
