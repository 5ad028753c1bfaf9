"""The bench's engine figures (issue 16): OpenVINO runners beside torch's in the worker path, the AVX2-capped
class, whole-process and INIT targets with their verdicts, cold-start medians, and parts carried over
from the previous run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from cosmicai.commands.bench_system import AVX2_CAP_ENV, AVX2_NOT_MEASURED, keep_previous
from cosmicai.perf import coldstart
from cosmicai.perf.report import best_accurate, engine_targets, render, targets
from cosmicai.perf.worker_path import REFERENCE, WorkerBenchConfig, WorkerPathBench, runner_name, split_runner


def _row(runner: str, batch: int, wall: float, dz: float | None, cls: str = "host", threads: int = 1) -> dict[str, Any]:
    backend, precision = split_runner(runner)
    return {
        "runner": runner, "backend": backend, "precision": precision, "cpu_class": cls, "threads": threads,
        "batch_size": batch, "objects_per_s": wall, "objects_per_cpu_s": wall * 1.02, "objects_per_s_per_thread": wall,
        "rounds_objects_per_s": [wall], "ratio_vs_reference": 1.0, "wall_ratio_vs_reference": 1.0,
        "max_abs_dz_vs_fp32": dz, "max_abs_dz_vs_reference": dz or 0.0,
    }  # fmt: skip


def test_runner_names_round_trip() -> None:
    assert runner_name("torch", "int8") == "int8" and runner_name("openvino", "int8") == "openvino-int8"
    assert split_runner("openvino-bf16") == ("openvino", "bf16")
    assert split_runner("fp32") == ("torch", "fp32") and split_runner(REFERENCE) == ("torch", "fp32")


class _OV:
    precisions = ("fp32", "bf16", "int8")


def test_openvino_runners_sit_beside_the_torch_ones() -> None:
    bench = WorkerPathBench.__new__(WorkerPathBench)
    bench.openvino_model = _OV()
    cfg = WorkerBenchConfig(batch_sizes=(64, 512), threads=(1, 2), scaling_batch=512)
    names = {(r.name, r.threads, r.batch) for r in bench.runners(cfg)}
    assert ("openvino-int8", 1, 64) in names and ("openvino-fp32", 1, 512) in names
    assert ("openvino-bf16", 1, 512) in names and ("openvino-bf16", 1, 64) not in names
    assert ("openvino-int8", 2, 512) in names and (REFERENCE, 2, 512) in names
    bench.openvino_model = None
    assert not any(r.name.startswith("openvino-") for r in bench.runners(cfg))


def test_best_accurate_filters_backend_class_and_accuracy() -> None:
    rows = [
        _row(REFERENCE, 1024, 250.0, 2e-7),
        _row("int8", 256, 690.0, 9e-4),
        _row("openvino-int8", 256, 1200.0, 6e-4),
        _row("openvino-bf16", 512, 1500.0, 3e-3),  # over the bound
        _row("openvino-int8", 256, 400.0, 1e-2, cls="avx2"),
        _row("openvino-fp32", 256, 300.0, 3e-7, cls="avx2"),
    ]
    assert best_accurate(rows, cpu_class="host", key="objects_per_s")["runner"] == "openvino-int8"
    assert best_accurate(rows, backend="torch", cpu_class="host")["runner"] == "int8"
    assert best_accurate(rows, cpu_class="avx2")["runner"] == "openvino-fp32"


def _results() -> dict[str, Any]:
    rows = [
        _row(REFERENCE, 1024, 250.0, 2e-7),
        _row("int8", 256, 690.0, 9e-4),
        _row("openvino-int8", 256, 1200.0, 6e-4),
        _row(REFERENCE, 1024, 200.0, 2e-7, cls="avx2"),
        _row("openvino-fp32", 256, 400.0, 3e-7, cls="avx2") | {"cap": "partial: 5.0% ..."},
    ]
    whole = [
        {"runner": "plain_eager", "backend": "torch", "precision": "fp32", "best_wall_s": 12.0},
        {"runner": "predict torch fp32", "backend": "torch", "precision": "fp32", "best_wall_s": 7.0},
        {"runner": "predict openvino fast", "backend": "openvino", "precision": "fast", "best_wall_s": 3.9},
    ]
    for w in whole:
        w |= {
            "objects": 4096, "x_plain_eager": round(12.0 / w["best_wall_s"], 3), "x_plain_eager_median": 1.0,
            "x_plain_eager_cpu": 1.0, "max_abs_dz_vs_eager": 1e-3 if w["precision"] == "fast" else 2e-7,
            "max_rel_dz_vs_eager": 3e-3 if w["precision"] == "fast" else 6e-7, "median_wall_s": w["best_wall_s"],
            "objects_per_s": 1.0, "best_cpu_s": 1.0,
        }  # fmt: skip
    probe = {"import_s": 0.2, "engine_s": 0.1, "process_wall_s": 0.6, "peak_rss_mb": 230.0, "cpu_class": "host"}
    return {
        "created_at": "2026-11-30 10:00 UTC",
        "worker_path": {"rows": rows, "objects": 1024, "shard_bytes": 21e6, "method": "m", "config": {}},
        "whole_process": {"rows": whole, "objects": 4096, "batch_size": 512, "rounds": 3, "method": "m"},
        "cold_start": {
            "probe": [
                probe | {"precision": "fp32", "backend": "torch", "first_prediction_s": 1.4},
                probe | {"precision": "openvino-int8", "backend": "openvino", "first_prediction_s": 0.55},
            ]
        },
        "cpu_classes": {"avx2": {"cap": AVX2_CAP_ENV, "not_measured": AVX2_NOT_MEASURED}},
    }


def test_issue_16_targets_and_verdicts() -> None:
    t = engine_targets(_results())
    assert t["per_core_wall_16"]["value"] == pytest.approx(1200 / 250, abs=1e-3) and t["per_core_wall_16"]["ok"]
    assert t["per_core_wall_16_avx2"]["ok"] == "reported" and t["per_core_wall_16_avx2"]["value"] == 2.0
    assert "fbgemm" in t["per_core_wall_16_avx2"]["detail"]
    assert t["predict_fast_whole"]["value"] == pytest.approx(12 / 3.9, abs=1e-3) and t["predict_fast_whole"]["ok"]
    assert t["fp32_exact_whole"]["value"] == pytest.approx(12 / 7, abs=1e-3) and t["fp32_exact_whole"]["ok"]
    assert t["init_16"]["value"] == 0.55 and t["init_16"]["ok"]  # the fastest accurate mode's probe
    assert t["image_size"]["ok"] is None


def test_targets_not_met_say_so_and_render() -> None:
    res = _results()
    res["worker_path"]["rows"][2]["objects_per_s"] = 900.0  # 3.6x: under 4.5
    res["cold_start"]["probe"][1]["first_prediction_s"] = 1.06
    t = targets(res)
    assert t["per_core_wall_16"]["ok"] is False and t["init_16"]["ok"] is False
    text = render(res | {"targets": t})
    assert "| NOT met |" in text and "AVX2-capped class (worker path)" in text
    assert "Not measured, `int8`: torch int8: fbgemm" in text and "## Whole process" in text


def test_previous_parts_are_carried_with_their_run() -> None:
    prev = {
        "created_at": "2026-11-25 20:34 UTC",
        "end_to_end": {"runs": [1]},
        "local_bill": {"run_id": "x"},
        "cold_start": {"local_cloud": "4 cold workers", "local_cloud_report_init_ms": {"mean": 5416}},
    }
    now = {
        "created_at": "2026-11-30 10:00 UTC",
        "worker_path": {"rows": []},
        "end_to_end": {"not_measured": "no deployed state machine"},
        "cold_start": {"probe": [], "local_cloud_not_measured": "needs the end-to-end runs"},
    }
    out = keep_previous(now, prev)
    assert out["end_to_end"] == {"runs": [1]} and out["local_bill"] == {"run_id": "x"}
    assert out["cold_start"]["local_cloud"] == "4 cold workers" and "local_cloud_not_measured" not in out["cold_start"]
    assert out["sections_from"]["end_to_end"] == "2026-11-25 20:34 UTC"
    assert out["sections_from"]["worker_path"] == "2026-11-30 10:00 UTC"
    again = keep_previous({"created_at": "2026-12-01 09:00 UTC", "end_to_end": {"not_measured": "x"}}, out)
    assert again["sections_from"]["end_to_end"] == "2026-11-25 20:34 UTC"  # the run it was measured in


def test_cold_start_series_keeps_medians(monkeypatch: pytest.MonkeyPatch) -> None:
    seq = iter([1.0, 0.5, 3.0, 0.6, 2.0, 0.4])

    def fake(weights: Path, precision: str, batch: int, **kw: Any) -> dict[str, Any]:
        first = next(seq)
        return {
            "precision": kw.get("name") or precision, "import_s": first / 2, "engine_s": 0.1,
            "first_prediction_s": first, "import_cpu_s": 0.1, "first_prediction_cpu_s": 0.2,
            "process_wall_s": first + 0.1, "peak_rss_mb": first * 100,
        }  # fmt: skip

    monkeypatch.setattr(coldstart, "probe_cold_start", fake)
    rows = coldstart.probe_series(
        Path("w"), [coldstart.Probe("torch", "fp32"), coldstart.Probe("openvino", "int8", name="openvino-int8")],
        512, rounds=3, progress=lambda s: None,
    )  # fmt: skip
    assert [r["first_prediction_s"] for r in rows] == [2.0, 0.5]
    assert rows[0]["rounds_first_prediction_s"] == [1.0, 3.0, 2.0] and rows[0]["peak_rss_mb"] == 300.0


def test_class_child_flags_are_hidden_and_parsed() -> None:
    from cosmicai.commands import bench_system

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    bench_system.register(sub)
    args = parser.parse_args(
        ["bench-system", "--class-child", "avx2", "--class-out", "x.json", "--cpu-classes", "host"]
    )
    assert args.class_child == "avx2" and args.cpu_classes == "host" and args.backends == "torch,openvino"
