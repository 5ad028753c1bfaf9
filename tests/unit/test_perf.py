"""Bench arithmetic: projections, the recommendation rule, overhead, thread scaling, targets and the report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cosmicai.commands.bench_system import apply_stack_env, e2e_target
from cosmicai.commands.costs import CostsCommandError, projection_for, stack_defaults
from cosmicai.perf.end_to_end import EndToEndError, local_cold_start, overhead
from cosmicai.perf.projection import projection_grid, recommend, shard_objects
from cosmicai.perf.report import render, targets, write_report
from cosmicai.perf.worker_path import thread_scaling


def _wp_row(runner: str, threads: int, batch: int, rate: float, dz: float | None) -> dict:
    return {
        "runner": runner,
        "threads": threads,
        "batch_size": batch,
        "objects_per_s": rate / 2,
        "objects_per_cpu_s": rate,
        "objects_per_s_per_thread": rate / threads,
        "rounds_objects_per_s": [rate],
        "ratio_vs_reference": 1.0,
        "wall_ratio_vs_reference": 1.0,
        "max_abs_dz_vs_fp32": dz,
        "max_abs_dz_vs_reference": 0.0,
    }


def test_e2e_target_is_two_integers() -> None:
    assert e2e_target("16x2048") == (16, 2048)
    # one number used to reach the sweep as a 1-tuple (an IndexError there); three were cut to two
    for bad in ("16", "16x2048x3"):
        with pytest.raises(SystemExit, match="SHARDSxOBJECTS"):
            e2e_target(bad)


def test_shard_objects_follow_the_reference_partition() -> None:
    assert [shard_objects(mb) for mb in (10, 25, 50, 100)] == [511, 1278, 2556, 5113]


def test_projection_row_by_hand() -> None:
    rows = projection_grid({1: 300.0}, init_s=3.0, memory_sizes=(1769,), shard_mb=(100,), shards_per_item=(1,))
    x86, arm = rows  # one row per arch
    per_item = 659_817 / 130
    # INIT, the shard GET (50 ms + its bytes at 67 MB/s), compute, the catalog, partial and report PUTs
    billed = 3.0 + 0.05 + per_item * 20_512 / 67e6 + per_item / 300.0 + 0.05 + per_item * 13.2 / 67e6 + 0.1
    per_m_infer = 1769 / 1024 * billed * 0.0000166667 * 130 * 1e6 / 659_817
    assert x86["arch"] == "x86_64" and x86["invocations"] == 130 and x86["waves"] == 1 and x86["shards_per_item"] == 1
    assert x86["billed_s_per_invocation"] == pytest.approx(billed, abs=1e-3)
    # lambda_compute adds Init and Summarize (under 0.2% here)
    assert x86["components_per_million"]["lambda_compute"] == pytest.approx(per_m_infer, rel=2e-3)
    assert x86["wall_s"] == pytest.approx(billed, abs=0.01)
    arm_ratio = 0.0000133334 / 0.0000166667
    assert arm["components_per_million"]["lambda_compute"] == pytest.approx(
        x86["components_per_million"]["lambda_compute"] * arm_ratio, rel=1e-3
    )


def test_recommend_prefers_fast_among_near_cheapest() -> None:
    rows = [
        {"arch": "x86_64", "memory_mb": 1769, "shard_mb": 100, "usd_per_million_objects": 0.100, "wall_s": 40.0},
        {"arch": "x86_64", "memory_mb": 1769, "shard_mb": 25, "usd_per_million_objects": 0.104, "wall_s": 12.0},
        {"arch": "x86_64", "memory_mb": 3538, "shard_mb": 10, "usd_per_million_objects": 0.200, "wall_s": 4.0},
        {"arch": "arm64", "memory_mb": 1769, "shard_mb": 10, "usd_per_million_objects": 0.01, "wall_s": 1.0},
    ]
    rec = recommend(rows, "x86_64")
    assert (rec["memory_mb"], rec["shard_mb"]) == (1769, 25)
    assert recommend(rows, "x86_64", min_memory_mb=2000)["memory_mb"] == 3538
    with pytest.raises(ValueError, match="memory >= 20000"):
        recommend(rows, "x86_64", min_memory_mb=20000)


def test_overhead_packs_workers_on_slots() -> None:
    ideal, ratio = overhead(30.0, [10.0, 10.0, 10.0, 10.0], slots=2)
    assert (ideal, ratio) == (20.0, 1.5)
    assert overhead(12.0, [12.0, 1.0], slots=4) == (12.0, 1.0)  # the longest worker bounds the ideal
    with pytest.raises(EndToEndError):
        overhead(1.0, [], 2)


def test_thread_scaling_efficiency() -> None:
    rows = [_wp_row("fp32", 1, 512, 100.0, 0.0), _wp_row("fp32", 2, 512, 170.0, 0.0), _wp_row("fp32", 1, 64, 90.0, 0.0)]
    rows[1]["objects_per_cpu_s"] = 85.0  # 2 threads: 170 objects/s of wall on 2 CPU-seconds per second
    assert thread_scaling(rows, 512) == {
        "fp32": {
            "objects_per_cpu_s_t1": 100.0,
            "objects_per_s_t1": 50.0,
            "efficiency_t1": 1.0,
            "objects_per_cpu_s_t2": 85.0,
            "objects_per_s_t2": 85.0,
            "efficiency_t2": 0.85,
        }
    }


def _results() -> dict:
    rows = [
        _wp_row("reference_style", 1, 64, 40.0, 0.0),
        _wp_row("reference_style", 1, 512, 50.0, 0.0),
        _wp_row("fp32", 1, 512, 140.0, 0.0),
        _wp_row("int8", 1, 512, 400.0, 0.02),
    ]
    grid = projection_grid({1: 140.0}, 3.0, memory_sizes=(1769, 3538), shard_mb=(25, 100))
    return {
        "machine": {"cpu_model": "test CPU", "cpus_available": 2, "load_avg_start": 1.0},
        "worker_path": {
            "rows": rows,
            "objects": 64,
            "shard_bytes": 1_312_768,
            "method": "m",
            "config": {"scaling_batch": 512},
            "thread_scaling": {},
        },
        "cold_start": {
            "probe": [
                {
                    "precision": "fp32",
                    "import_s": 0.5,
                    "engine_s": 2.0,
                    "first_prediction_s": 3.0,
                    "process_wall_s": 3.5,
                    "peak_rss_mb": 500.0,
                }
            ]
        },
        "end_to_end": {"not_measured": "pipeline not ready"},
        "projection": {
            "inputs": {
                "mode": "fp32",
                "batch_size": 512,
                "objects_per_s_by_threads": {"1": 140.0},
                "init_s": 3.0,
                "concurrency": 1000,
                "assumptions": ["a"],
                "reference_usd_per_million": 1.78,
            },
            "rows": grid,
        },
        "recommendation": recommend(grid) | {"batch_size": 512, "precision": "fp32"},
    }


def test_targets_use_the_fastest_accurate_mode_and_the_best_reference() -> None:
    t = targets(_results())
    # int8 is faster but 0.02 off fp32, so fp32 counts; the reference at its best batch (50/s).
    assert t["per_core_ratio"]["value"] == pytest.approx(2.8) and t["per_core_ratio"]["ok"] is True
    assert t["overhead"] == {"value": None, "target": "< 1.3", "ok": None, "detail": "pipeline not ready"}
    assert t["cost"]["ok"] is False  # 140 objects/s per vCPU cannot reach $0.10


def test_report_renders_tables_and_plots(tmp_path: Path) -> None:
    path = write_report(_results(), tmp_path)
    text = path.read_text()
    assert "| worker objects/s per core vs reference-style | 2.8 | >= 2.5 | met |" in text
    assert "Not measured: pipeline not ready." in text and "(projection, not a bill)" in text
    assert "2.0e-02 from fp32: outside the 0.002 limit, so it is not recommended." in text
    assert (tmp_path / "worker_path.png").stat().st_size > 1000 and (tmp_path / "projection.png").exists()
    assert "end_to_end.png" not in text
    assert render(_results()).startswith("# cosmic-ai benchmark report")


def test_stack_env_fills_bench_and_costs_options(tmp_path: Path) -> None:
    env = {
        "COSMICAI_TF_STATE_MACHINE_ARN": "arn:sm",
        "COSMICAI_TF_DATA_URI": "s3://data-b/shards/",
        "COSMICAI_TF_RESULTS_URI": "s3://res-b/runs/",
        "COSMICAI_TF_LOG_GROUP_NAMES": json.dumps(
            {"infer": "/aws/lambda/i", "init": "/aws/lambda/n", "state_machine": "/sfn"}
        ),
    }
    args = argparse.Namespace(
        state_machine_arn=None, data_uri=None, results_uri=None, infer_log_group=None, bucket=None
    )
    apply_stack_env(args, env)
    assert (args.state_machine_arn, args.bucket, args.infer_log_group) == ("arn:sm", "data-b", "/aws/lambda/i")
    with pytest.raises(SystemExit, match="COSMICAI_TF_STATE_MACHINE_ARN"):
        apply_stack_env(argparse.Namespace(), {})
    cargs = argparse.Namespace(logs=None, run_id="r1", output=None)
    stack_defaults(cargs, env)
    assert cargs.logs == ["/aws/lambda/i", "/aws/lambda/n"] and cargs.output == "s3://res-b/runs/r1/"
    with pytest.raises(CostsCommandError, match="COSMICAI_TF_LOG_GROUP_NAMES is unset"):
        stack_defaults(argparse.Namespace(logs=None, run_id=None, output=None), {})
    results = tmp_path / "results.json"
    results.write_text(json.dumps(_results()))
    near = projection_for(str(results), "x86_64", 3008, 1000)
    assert (near["memory_mb"], near["shard_mb"], near["kind"]) == (3538, 25, "projection")
    assert projection_for(str(tmp_path / "absent.json"), "x86_64", 3008, 1000) is None


def test_local_cold_start_says_when_every_worker_was_warm() -> None:
    cold = {
        "runs": [
            {
                "per_worker": [
                    {"cold_start": True, "init_seconds": 0.3, "seconds": 5.0},
                    {"cold_start": False, "init_seconds": 0.0, "seconds": 2.0},
                ]
            }
        ]
    }
    assert local_cold_start(cold, None) == {
        "local_cloud": "1 cold workers: init (imports + weights) 0.30 s mean; "
        "cold worker wall 5.0 s mean (engine fold + its shard)"
    }
    warm = {"runs": [{"per_worker": [{"cold_start": False, "init_seconds": 0.0, "seconds": 2.0}]}]}
    assert "still warm" in local_cold_start(warm, None)["local_cloud"]
    assert local_cold_start({}, None) == {"local_cloud_not_measured": "no cold worker in the end-to-end runs"}
