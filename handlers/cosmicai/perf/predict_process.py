"""`cosmicai predict` as a whole process against a plain eager loop as a whole process, on one core.

Issue 16's whole-process figures: `cosmicai predict --precision fast` (and the fp32-exact modes)
from interpreter start to the catalog written, against a plain eager PyTorch loop of the same model
doing the same job in its own process (import torch, load the weights, read the shard, predict in
`inference_mode` batch by batch, write the catalog). Every process computes on one thread (the eager
loop `torch.set_num_threads(1)`, predict `--threads 1`, OMP_NUM_THREADS=1); they are not pinned to a
CPU, so on a shared machine each runs on whichever core is free. The runners are interleaved over
rounds, and each one's wall and CPU seconds (the child's own, from `wait4`) are kept; max |dz| is
measured on the catalogs against the eager loop's (the unmodified model in fp32), also relative to the
largest |z|.

    python -m cosmicai.perf.predict_process --weights DIR/astromae.safetensors [--objects 4096] [--rounds 3]

The weights need the engine's files next to them (`cosmicai convert-checkpoint W --openvino --qualify`,
as the inference image build writes them), or `fast` falls back to fp32 and OpenVINO converts in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The plain eager loop as a whole process: the unmodified model, eager, inference_mode, batch by batch.
_EAGER = """
import sys
import torch
torch.set_num_threads(1)
from cosmicai.catalog import write_catalog
from cosmicai.engine_torch import plain_eager_predict
from cosmicai.shards import read_shard
from cosmicai.weights import load_model
weights, shard_path, out, batch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = load_model(weights)
shard = read_shard(shard_path)
z = plain_eager_predict(model, shard.images, shard.magnitudes, batch_size=batch)
write_catalog(out, shard.object_ids, z, shard.redshift)
"""


@dataclass(frozen=True)
class Job:
    """One whole-process runner: `plain_eager`, or `cosmicai predict` with a backend and precision."""

    name: str
    backend: str = "torch"
    precision: str = "fp32"

    def argv(self, weights: Path, shard: Path, out: Path, batch: int) -> list[str]:
        if self.name == "plain_eager":
            return [sys.executable, "-c", _EAGER, str(weights), str(shard), str(out), str(batch)]
        return [
            sys.executable, "-m", "cosmicai.cli", "predict", "--weights", str(weights), "--input", str(shard),
            "--output", str(out), "--backend", self.backend, "--precision", self.precision,
            "--batch-size", str(batch), "--threads", "1",
        ]  # fmt: skip


DEFAULT_JOBS = (
    Job("plain_eager"),
    Job("predict torch fp32", "torch", "fp32"),
    Job("predict openvino fp32", "openvino", "fp32"),
    Job("predict torch fast", "torch", "fast"),
    Job("predict openvino fast", "openvino", "fast"),
)


class _Popen(subprocess.Popen[str]):
    """Popen that keeps the child's rusage (os.wait4) for its CPU seconds."""

    rusage: Any = None

    def _try_wait(self, wait_flags: int) -> tuple[int, int]:
        try:
            pid, sts, self.rusage = os.wait4(self.pid, wait_flags)
        except ChildProcessError:
            pid, sts = self.pid, 0
        return pid, sts


def _run(argv: list[str], cpu: int | None, env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its stdout) of one child process (pinned to `cpu` if given)."""
    t0 = time.perf_counter()
    proc = _Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu})),
    )
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} ... failed ({proc.returncode}): {err.strip()[-1500:]}")
    # The child's own CPU time: /proc is gone after communicate(), so read it from the rusage of wait4.
    usage = proc.rusage
    cpu_s = (usage.ru_utime + usage.ru_stime) if usage is not None else float("nan")
    return wall, cpu_s, out


def measure(
    weights: Path,
    objects: int = 4096,
    batch: int = 512,
    rounds: int = 3,
    jobs: Sequence[Job] = DEFAULT_JOBS,
    cpu: int | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Rows per job: best and median wall seconds, CPU seconds, objects/s, x plain eager, max |dz|."""
    from cosmicai.catalog import read_catalog
    from cosmicai.perf.scale import synthetic_shard
    from cosmicai.shards import write_shard

    load0 = [round(x, 2) for x in os.getloadavg()]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", None)
    tmp = Path(tempfile.mkdtemp(prefix="cosmicai-predict-process-"))
    shard = tmp / "shard.safetensors"
    write_shard(synthetic_shard(objects, seed=4), shard)
    walls: dict[str, list[float]] = {j.name: [] for j in jobs}
    cpus: dict[str, list[float]] = {j.name: [] for j in jobs}
    said: dict[str, str] = {}
    for r in range(rounds):
        order = list(jobs[r % len(jobs) :]) + list(jobs[: r % len(jobs)])
        for j in order:
            out = tmp / f"{j.name.replace(' ', '-')}.parquet"
            wall, cpu_s, stdout = _run(j.argv(weights, shard, out, batch), cpu, env)
            walls[j.name].append(wall)
            cpus[j.name].append(cpu_s)
            said[j.name] = stdout.strip().splitlines()[-1] if stdout.strip() else ""
            progress(f"whole process {j.name}: round {r + 1}/{rounds}: {wall:.2f} s wall, {cpu_s:.2f} s CPU")
    z = {
        j.name: np.asarray(read_catalog(tmp / f"{j.name.replace(' ', '-')}.parquet").column("z_pred").to_numpy(), float)
        for j in jobs
    }
    eager = z["plain_eager"]
    best_eager = min(walls["plain_eager"])
    rows = []
    for j in jobs:
        dz = np.abs(z[j.name] - eager)
        rows.append(
            {
                "runner": j.name,
                "backend": j.backend,
                "precision": j.precision,
                "objects": objects,
                "best_wall_s": round(min(walls[j.name]), 3),
                "median_wall_s": round(statistics.median(walls[j.name]), 3),
                "rounds_wall_s": [round(w, 3) for w in walls[j.name]],
                "best_cpu_s": round(min(cpus[j.name]), 3),
                "objects_per_s": round(objects / min(walls[j.name]), 1),
                "x_plain_eager": round(best_eager / min(walls[j.name]), 3),
                "x_plain_eager_median": round(
                    statistics.median(walls["plain_eager"]) / statistics.median(walls[j.name]), 3
                ),
                "x_plain_eager_cpu": round(min(cpus["plain_eager"]) / min(cpus[j.name]), 3),
                "max_abs_dz_vs_eager": float(dz.max()),
                # relative to the largest |z| (a synthetic object's z can be ~0, where |dz| / |z| means nothing)
                "max_rel_dz_vs_eager": float(dz.max() / max(float(np.abs(eager).max()), 1e-12)),
                "said": said[j.name],
            }
        )
    return {
        "kind": "whole process on one core (issue 16)",
        "created_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "weights": str(weights),
        "objects": objects,
        "batch_size": batch,
        "rounds": rounds,
        "cpu": cpu,
        "method": "each runner a fresh process computing on one thread (eager: torch.set_num_threads(1); "
        "predict: --threads 1; OMP_NUM_THREADS=1"
        + (
            f"; pinned to CPU {cpu}"
            if cpu is not None
            else "; not pinned: on a shared machine each runs where a core is free"
        )
        + "), interpreter start to catalog written; runners interleaved over rounds, the best wall time kept "
        "(median beside it); CPU seconds from the child's rusage; dz on the catalogs vs the plain eager loop",
        "load_avg_start": load0,
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m cosmicai.perf.predict_process",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--objects", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cpu", type=int, default=None, help="pin every process to this CPU (default: not pinned)")
    p.add_argument("--out", type=Path, help="write the JSON here")
    args = p.parse_args(argv)
    res = measure(args.weights, args.objects, args.batch_size, args.rounds, cpu=args.cpu)
    text = json.dumps(res, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    for r in res["rows"]:
        print(
            f"{r['runner']:<24} {r['best_wall_s']:7.2f} s ({r['objects_per_s']:7.1f} obj/s) "
            f"{r['x_plain_eager']:5.2f}x eager (median {r['x_plain_eager_median']:.2f}x, CPU "
            f"{r['x_plain_eager_cpu']:.2f}x), max |dz| {r['max_abs_dz_vs_eager']:.1e}, "
            f"rel {r['max_rel_dz_vs_eager']:.1e}"
        )
    return 0


__all__ = ["DEFAULT_JOBS", "Job", "main", "measure"]

if __name__ == "__main__":
    raise SystemExit(main())
