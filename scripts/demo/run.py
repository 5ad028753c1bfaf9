"""`make demo`, after setup/LocalStack/deploy: sample data -> S3 -> invoke -> report -> verdict.

Runs under `deploy.stack exec`, so the Terraform outputs arrive as COSMICAI_TF_* variables
and the AWS client settings (endpoint, credentials) as the usual AWS_* variables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


class DemoError(RuntimeError):
    """A demo step failed; the message names the step and what to look at."""


@dataclass(frozen=True)
class DemoSettings:
    """What the demo makes and where: validated once from the command line and outputs."""

    objects: int
    seed: int
    shard_mb: int
    data_dir: Path
    runs_dir: Path
    data_uri: str
    results_uri: str
    state_machine_arn: str
    batch_size: int
    shards_per_worker: int

    @property
    def dataset_dir(self) -> Path:
        return self.data_dir / f"demo-n{self.objects}-s{self.seed}"

    @property
    def input_uri(self) -> str:
        return f"{self.data_uri.rstrip('/')}/demo-n{self.objects}-s{self.seed}-{self.shard_mb}mb/"


def _output(name: str) -> str:
    value = os.environ.get(f"COSMICAI_TF_{name.upper()}", "")
    if not value:
        raise DemoError(f"Terraform output {name!r} is missing: run `make deploy` first")
    return value


def settings_from_args(argv: list[str] | None = None) -> DemoSettings:
    """Parse the command line and read the deployed stack's outputs."""
    p = argparse.ArgumentParser(prog="demo", description=__doc__)
    p.add_argument("--objects", type=int, default=4096)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--shard-mb", type=int, default=10, choices=(10, 25, 50, 75, 100))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--shards-per-worker", type=int, default=1)
    p.add_argument("--data-dir", type=Path, default=Path("data"))
    p.add_argument("--runs-dir", type=Path, default=Path("runs"))
    a = p.parse_args(argv)
    if a.objects < 1:
        p.error("--objects must be at least 1")
    return DemoSettings(
        objects=a.objects,
        seed=a.seed,
        shard_mb=a.shard_mb,
        data_dir=a.data_dir,
        runs_dir=a.runs_dir,
        data_uri=_output("data_uri"),
        results_uri=_output("results_uri"),
        state_machine_arn=_output("state_machine_arn"),
        batch_size=a.batch_size,
        shards_per_worker=a.shards_per_worker,
    )


def step(title: str, command: list[str]) -> None:
    """Run one CLI step with a heading; its own progress bars stream through."""
    print(f"\n==> {title}\n    $ {' '.join(command)}", flush=True)
    started = time.monotonic()
    if subprocess.run(command).returncode != 0:
        raise DemoError(f"step '{title}' failed (command above); its output says why")
    print(f"    done in {time.monotonic() - started:.1f} s", flush=True)


def cosmicai(*args: str) -> list[str]:
    return [sys.executable, "-m", "cosmicai.cli", *args]


def make_sample_data(s: DemoSettings) -> None:
    """Generate the synthetic survey once per (objects, seed); reuse it afterwards."""
    # make-dataset writes dataset.json last, so its presence means a complete dataset.
    if (s.dataset_dir / "dataset.json").exists():
        print(f"\n==> Sample data: reusing {s.dataset_dir}", flush=True)
        return
    step(
        f"Generate {s.objects:,} SDSS-like galaxies (seed {s.seed})",
        cosmicai("make-dataset", "--n", str(s.objects), "--seed", str(s.seed), "--out", str(s.dataset_dir)),
    )


def upload_sample_data(s: DemoSettings) -> None:
    step(
        f"Partition into ~{s.shard_mb} MB shards and upload to {s.input_uri}",
        cosmicai("partition", str(s.dataset_dir), "--target-mb", str(s.shard_mb), "--out", s.input_uri),
    )


def invoke(s: DemoSettings, run_id: str) -> Path:
    payload = {
        "input": s.input_uri,
        "output": s.results_uri,
        "run_id": run_id,
        "batch_size": s.batch_size,
        "shards_per_worker": s.shards_per_worker,
    }
    step(
        "Run the pipeline (Init -> Map of inference workers -> Summarize)",
        cosmicai(
            "invoke",
            "--state-machine-arn",
            s.state_machine_arn,
            "--payload",
            json.dumps(payload),
            "--out",
            str(s.runs_dir),
        ),
    )
    return s.runs_dir / run_id


def verdict(run_dir: Path) -> str:
    """One line from the run's summary: status, accounting, accuracy, where the outputs are."""
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        raise DemoError(f"the run finished but {summary_path} is missing")
    summary = json.loads(summary_path.read_text())
    objects = summary["objects"]
    metrics = summary.get("metrics") or {}
    mae = f", MAE {metrics['mae']:.4f}" if metrics.get("mae") is not None else ""
    status = "SUCCEEDED" if objects["failed"] == 0 and objects["total"] == objects["predicted"] else "INCOMPLETE"
    return (
        f"demo: {status}: {objects['predicted']:,}/{objects['total']:,} objects predicted, "
        f"{objects['failed']:,} failed{mae}; report, plots and catalog in {run_dir}/"
    )


def main(argv: list[str] | None = None) -> int:
    try:
        s = settings_from_args(argv)
        make_sample_data(s)
        upload_sample_data(s)
        run_id = "demo-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        run_dir = invoke(s, run_id)
        print("\n" + verdict(run_dir))
        return 0
    except DemoError as exc:
        print(f"\ndemo: FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
