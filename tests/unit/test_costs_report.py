"""REPORT-line parsing, the bill it gives, and the run projection, against hand-computed cases."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from cosmicai.commands.costs import CostsCommandError, parse_time_ms
from cosmicai.costs import CostError, Prices, project_run, throughput_at_memory
from cosmicai.lambda_logs import (
    ReportLine,
    ReportLineError,
    bill,
    dedupe,
    fetch_report_lines,
    parse_report_line,
    parse_report_lines,
)

# AWS text format: tab-separated, trailing tab; Billed Duration already holds the init time.
AWS_WARM = (
    "REPORT RequestId: 3604209a-e9a3-11e6-939a-754dd98c7be3\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
    "Memory Size: 128 MB\tMax Memory Used: 18 MB\t"
)
AWS_COLD_IMAGE = (
    "REPORT RequestId: bf5f58db-ef7d-4cb2-b3c6-266eba1bbedb\tDuration: 395.99 ms\tBilled Duration: 662 ms\t"
    "Memory Size: 512 MB\tMax Memory Used: 301 MB\tInit Duration: 265.72 ms\t"
)
# One CloudWatch event can carry the REPORT line and the X-Ray line together.
AWS_XRAY_EVENT = (
    "REPORT RequestId: 89ba7dfa-72d1-4ad7-9dac-2214d1698697\tDuration: 4.42 ms\tBilled Duration: 338 ms\t"
    "Memory Size: 1152 MB\tMax Memory Used: 75 MB\tInit Duration: 333.05 ms\t\n"
    "XRAY TraceId: 1-5e1b4151-43a0913a12345678901234567\tSegmentId: 6d0f1e2c3b4a5968\tSampled: true\t\n"
)
AWS_SNAPSTART = (
    "REPORT RequestId: 7b7e3f1a-2c4d-4e5f-8a9b-0c1d2e3f4a5b\tDuration: 111.55 ms\tBilled Duration: 112 ms\t"
    "Memory Size: 2048 MB\tMax Memory Used: 115 MB\tRestore Duration: 474.16 ms\tBilled Restore Duration: 334 ms\t"
)
AWS_TIMEOUT = (
    "REPORT RequestId: 0d7c2f5e-1111-4222-8333-944455556666\tDuration: 3000.00 ms\tBilled Duration: 3000 ms\t"
    "Memory Size: 10240 MB\tMax Memory Used: 5948 MB\tInit Duration: 2100.50 ms\tStatus: timeout"
)
AWS_ERROR = (
    "REPORT RequestId: 5a5a5a5a-bbbb-4ccc-8ddd-eeeeeeeeeeee\tDuration: 812.11 ms\tBilled Duration: 813 ms\t"
    "Memory Size: 3008 MB\tMax Memory Used: 3008 MB\tStatus: error\tError Type: Runtime.OutOfMemory"
)
# Copied from a console: spaces instead of tabs.
AWS_SPACES = (
    "REPORT RequestId: f949935c-0f0e-4718-9976-9df42585adb5 Duration: 2.05 ms Billed Duration: 3 ms "
    "Memory Size: 1152 MB Max Memory Used: 76 MB"
)
# JSON log format (LoggingConfig.LogFormat = JSON).
AWS_JSON = json.dumps(
    {
        "time": "2025-01-01T00:00:00.000Z",
        "type": "platform.report",
        "record": {
            "requestId": "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa",
            "metrics": {
                "durationMs": 1450.4,
                "billedDurationMs": 3551,
                "memorySizeMB": 3538,
                "maxMemoryUsedMB": 812,
                "initDurationMs": 2100.2,
            },
            "status": "success",
        },
    }
)
# Captured from the local cloud's process executor (LocalStack log groups of a deployed stack, one run):
# same text layout as AWS, but its Billed Duration leaves the Init Duration out.
LOCAL_LINES = (Path(__file__).parent / "data" / "report_lines_localstack.log").read_text().splitlines()
LOCAL_CLOUD = next(line for line in LOCAL_LINES if line.startswith("REPORT") and "Init Duration" in line)


def test_text_lines_with_and_without_init() -> None:
    warm = parse_report_line(AWS_WARM)
    assert warm == ReportLine("3604209a-e9a3-11e6-939a-754dd98c7be3", 12.34, 13.0, 128, 18)
    assert not warm.cold
    cold = parse_report_line(AWS_COLD_IMAGE)
    assert cold.init_duration_ms == pytest.approx(265.72) and cold.cold
    assert cold.billed_gb_seconds == pytest.approx(0.5 * 0.662)
    spaced = parse_report_line(AWS_SPACES)
    assert (spaced.request_id, spaced.billed_duration_ms, spaced.memory_size_mb, spaced.max_memory_used_mb) == (
        "f949935c-0f0e-4718-9976-9df42585adb5",
        3.0,
        1152,
        76,
    )


def test_xray_start_end_lines_are_skipped() -> None:
    lines = [
        "START RequestId: 89ba7dfa-72d1-4ad7-9dac-2214d1698697 Version: $LATEST",
        *AWS_XRAY_EVENT.splitlines(),
        "END RequestId: 89ba7dfa-72d1-4ad7-9dac-2214d1698697",
        '{"level": "INFO", "msg": "item done"}',
    ]
    reports = parse_report_lines(lines)
    assert len(reports) == 1
    assert reports[0].billed_duration_ms == 338.0 and reports[0].init_duration_ms == pytest.approx(333.05)


def test_snapstart_timeout_error_json_and_local() -> None:
    snap = parse_report_line(AWS_SNAPSTART)
    assert snap.restore_duration_ms == pytest.approx(474.16) and snap.cold
    assert snap.billed_seconds == pytest.approx((112 + 334) / 1000)  # restore is billed too
    timeout = parse_report_line(AWS_TIMEOUT)
    assert (timeout.status, timeout.memory_size_mb, timeout.init_duration_ms) == ("timeout", 10240, 2100.5)
    error = parse_report_line(AWS_ERROR)
    assert (error.status, error.error_type) == ("error", "Runtime.OutOfMemory")
    js = parse_report_line(AWS_JSON)
    assert (js.request_id, js.billed_duration_ms, js.memory_size_mb, js.init_duration_ms, js.status) == (
        "6d68ca91-49c9-448d-89b8-7ca3e6dc66aa",
        3551.0,
        3538,
        2100.2,
        None,
    )
    assert parse_report_line(json.dumps({"type": "platform.start", "record": {}})) is None
    local = parse_report_line(LOCAL_CLOUD)
    # 30,385.79 ms run + 1,047.31 ms init, billed as AWS bills an image's cold start: 31,434 ms.
    assert (local.duration_ms, local.billed_duration_ms, local.init_duration_ms) == (30385.79, 30386.0, 1047.31)
    assert local.billed_gb_seconds == pytest.approx(3008 / 1024 * 31.434)


def test_real_local_cloud_lines() -> None:
    reports = parse_report_lines(LOCAL_LINES, where="report_lines_localstack.log")
    assert len(reports) == 9 and len(LOCAL_LINES) > 9  # START/END lines skipped
    assert [r.memory_size_mb for r in reports] == [3008] * 3 + [512] * 3 + [1769] * 3  # infer, init, summarize
    assert [r.cold for r in reports] == [True, True, False] * 3
    warm = reports[2]
    assert warm.billed_seconds == pytest.approx(0.018)  # warm: Billed Duration as reported
    for r in reports:
        assert r.billed_duration_ms == pytest.approx(-(-r.duration_ms // 1))  # local: duration rounded up to 1 ms
    b = bill(reports[:3], "x86_64", objects=256)
    gb_s = 3008 / 1024 * (31.434 + 32.276 + 0.018)  # ceil(31,097.38 + 1,178.07) = 32,276 ms
    assert b["billed_gb_seconds"] == pytest.approx(gb_s, rel=1e-6)
    assert b["cold_starts"] == 2 and b["max_memory_used_mb"] == 460


def test_malformed_report_line_names_the_place() -> None:
    with pytest.raises(ReportLineError, match=r"grp/s1: REPORT line lacks billed_duration_ms, memory_size_mb"):
        parse_report_line("REPORT RequestId: x\tDuration: 1 ms", where="grp/s1")
    with pytest.raises(ReportLineError, match="memory_size_mb is not a number"):
        parse_report_line("REPORT RequestId: x\tDuration: 1 ms\tBilled Duration: 1 ms\tMemory Size: lots MB")


def test_bill_by_hand() -> None:
    reports = [parse_report_line(x) for x in (AWS_COLD_IMAGE, AWS_TIMEOUT, AWS_WARM)]
    b = bill(reports, "x86_64", objects=4000)
    gb_s = 0.5 * 0.662 + 10.0 * 3.0 + 0.125 * 0.013
    assert b["billed_gb_seconds"] == pytest.approx(gb_s)
    assert b["usd"]["lambda_compute"] == pytest.approx(gb_s * 0.0000166667)
    assert b["usd"]["lambda_requests"] == pytest.approx(3 * 0.2e-6)
    assert b["usd_per_million_objects"] == pytest.approx((gb_s * 0.0000166667 + 3 * 0.2e-6) * 250)
    assert (b["invocations"], b["cold_starts"], b["statuses"]) == (3, 2, {"success": 2, "timeout": 1})
    assert b["max_memory_used_mb"] == 5948 and b["memory_sizes_mb"] == [128, 512, 10240]
    arm = bill(reports, "arm64")
    assert arm["usd"]["lambda_compute"] == pytest.approx(gb_s * 0.0000133334)
    # The reference's invocation: 10,240 MB billed 40.9 s for 3,835 objects -> about $1.78 per million.
    ref = ReportLine("ref", 40_900.0, 40_900.0, 10240, 5948)
    assert bill([ref], objects=3835)["usd_per_million_objects"] == pytest.approx(1.7775, abs=5e-4)
    assert bill([])["usd"]["total"] == 0.0


def test_dedupe_keeps_one_per_request() -> None:
    a = parse_report_line(AWS_WARM)
    assert dedupe([a, a, parse_report_line(AWS_COLD_IMAGE)]) == [a, parse_report_line(AWS_COLD_IMAGE)]


def test_fetch_pages_through_filter_log_events() -> None:
    logs = boto3.client("logs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(logs) as stub:
        params = {
            "logGroupName": "/aws/lambda/f",
            "startTime": 1000,
            "endTime": 2000,
            "filterPattern": '?"REPORT RequestId" ?"platform.report"',
        }
        stub.add_response(
            "filter_log_events",
            {
                "events": [
                    {"logStreamName": "s1", "timestamp": 1500, "message": AWS_XRAY_EVENT},
                    {"logStreamName": "s1", "timestamp": 1501, "message": "START RequestId: y"},
                ],
                "nextToken": "t",
            },
            params,
        )
        stub.add_response(
            "filter_log_events",
            {"events": [{"logStreamName": "s2", "timestamp": 1600, "message": AWS_JSON}]},
            params | {"nextToken": "t"},
        )
        got = list(fetch_report_lines(logs, "/aws/lambda/f", start_ms=1000, end_ms=2000))
    assert [(r.request_id, r.log_stream, r.timestamp_ms) for r in got] == [
        ("89ba7dfa-72d1-4ad7-9dac-2214d1698697", "s1", 1500),
        ("6d68ca91-49c9-448d-89b8-7ca3e6dc66aa", "s2", 1600),
    ]


def test_parse_time_forms() -> None:
    assert parse_time_ms("2025-01-01T00:00:00Z", "--start") == 1735689600000
    assert parse_time_ms("1735689600", "--start") == 1735689600000
    assert parse_time_ms("2h", "--start", now=10_000.0) == (10_000 - 7200) * 1000
    assert parse_time_ms(None, "--end") is None
    with pytest.raises(CostsCommandError, match="--end 'yesterday'"):
        parse_time_ms("yesterday", "--end")


def test_costs_command_needs_run_id_and_output_together() -> None:
    from cosmicai.commands.costs import collect

    args = argparse.Namespace(
        logs=["/aws/lambda/f"], start=None, end=None, output=None, run_id="r1", arch=None, objects=None
    )
    with pytest.raises(CostsCommandError, match="--run-id and --output go together"):
        collect(args)


def test_throughput_scales_with_vcpu_share() -> None:
    rates = {1: 400.0, 2: 720.0}  # 2 threads: 90% efficiency
    assert throughput_at_memory(rates, 1769) == pytest.approx(400.0)
    assert throughput_at_memory(rates, 3538) == pytest.approx(720.0)
    assert throughput_at_memory(rates, 884.5) == pytest.approx(200.0)  # half a vCPU share
    # Beyond the measured 2 threads the 2-thread per-vCPU efficiency is assumed: 6 x 400 x 0.9.
    assert throughput_at_memory(rates, 10240) == pytest.approx(10240 / 1769 * 400 * 0.9)
    # Two threads slower than one (a contended machine): more vCPUs never project below the best fewer-thread rate.
    assert throughput_at_memory({1: 270.0, 2: 180.0}, 3008) == pytest.approx(270.0)
    assert throughput_at_memory({1: 270.0, 2: 180.0}, 10240) == pytest.approx(10240 / 1769 * 90.0)
    with pytest.raises(CostError, match="thread count 1"):
        throughput_at_memory({2: 700.0}, 1769)


def test_project_run_by_hand() -> None:
    p = project_run(
        objects_per_s=400.0,
        memory_mb=1769,
        shard_objects=5000,
        total_objects=659_817,
        concurrency=1000,
        init_s=2.0,
        arch="x86_64",
    )
    invocations = -(-659_817 // 5000)  # 132
    per_item = 659_817 / invocations  # the mean item
    download = 0.05 + per_item * 20_512 / 67e6  # one GET stream at 67 MB/s plus 50 ms (costs.S3_MB_PER_S)
    upload = 0.05 + per_item * 13.2 / 67e6 + 2 * 0.05  # catalog, then the metric partial and the report
    billed = 2.0 + download + per_item / 400 + upload
    infer_per_m = 1769 / 1024 * billed * 0.0000166667 * invocations * 1e6 / 659_817
    assert p["invocations"] == invocations and p["cold_starts"] == invocations
    assert p["billed_s_per_invocation"] == pytest.approx(billed)
    assert p["bill"]["counts"]["gb_seconds"]["infer"] == pytest.approx(1769 / 1024 * billed * invocations)
    assert p["cost"]["components"]["lambda_compute"] == pytest.approx(infer_per_m, rel=2e-3)  # + Init and Summarize
    assert p["wall_s"] == pytest.approx(billed)  # 132 workers <= 1000: one wave
    assert p["run_usd"] == pytest.approx(p["cost"]["usd_per_million_objects"] * 659_817 / 1e6)
    many = project_run(
        objects_per_s=400.0,
        memory_mb=1769,
        shard_objects=500,
        total_objects=659_817,
        concurrency=1000,
        init_s=2.0,
        prices=Prices(),
    )
    one = many["item_seconds"]
    item_s = one["download_s"] + one["compute_s"] + one["upload_s"]
    assert many["waves"] == 2 and many["wall_s"] == pytest.approx(2.0 + 2 * item_s)  # init once per worker
    assert many["cold_starts"] == 1000  # the second wave reuses the first wave's environments
