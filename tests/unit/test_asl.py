"""The pipeline ASL: valid JSON, reachable states, Retry/Catch, only the documented placeholders."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "pipeline.asl.json"
PLACEHOLDERS = {"init_function_arn", "infer_function_arn", "summarize_function_arn"}
TRANSIENT = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def rendered() -> dict[str, Any]:
    """The ASL with placeholders filled as Terraform's templatefile would."""
    text = ASL.read_text()
    for name in PLACEHOLDERS:
        text = text.replace(
            "${" + name + "}", f"arn:aws:lambda:us-east-1:000000000000:function:cosmicai-{name.split('_')[0]}"
        )
    return json.loads(text)


def walk(states: dict[str, Any], start: str) -> set[str]:
    """Names reachable from `start` via Next, Default, Choices and Catch."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        assert name in states, f"transition to undefined state {name!r}"
        seen.add(name)
        st = states[name]
        todo += [st[k] for k in ("Next", "Default") if k in st]
        todo += [c["Next"] for c in st.get("Choices", [])]
        todo += [c["Next"] for c in st.get("Catch", [])]
    return seen


def all_state_maps(doc: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    out = [(doc["States"], doc["StartAt"])]
    for st in doc["States"].values():
        if "ItemProcessor" in st:
            out += all_state_maps(st["ItemProcessor"])
    return out


def test_only_documented_placeholders_and_no_template_directives() -> None:
    text = ASL.read_text()
    assert set(re.findall(r"\$\{([^}]*)\}", text)) == PLACEHOLDERS
    assert "%{" not in text  # templatefile would treat it as a directive


def test_every_state_reachable_and_every_path_ends() -> None:
    for states, start in all_state_maps(rendered()):
        assert walk(states, start) == set(states)
        for name, st in states.items():
            terminal = st["Type"] in ("Succeed", "Fail") or st.get("End") is True
            assert terminal or "Next" in st or st["Type"] == "Choice", f"{name} has no way out"


def test_shape_init_map_summarize() -> None:
    doc = rendered()
    st = doc["States"]
    assert doc["StartAt"] == "Init" and st["Init"]["Next"] == "Infer all items"
    m = st["Infer all items"]
    assert m["Type"] == "Map" and m["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }
    assert m["ItemReader"]["Resource"] == "arn:aws:states:::s3:getObject"
    assert m["ItemReader"]["ReaderConfig"]["InputType"] == "JSON"
    assert m["Next"] == "Summarize" and [c["Next"] for c in m["Catch"]] == ["Summarize"]
    assert isinstance(m["ToleratedFailurePercentage"], float)
    assert "MaxConcurrencyPath" in m or "MaxConcurrency" in m
    # no per-item results kept in state: they live in S3; children output {} and the Map drops its result
    assert m["ResultPath"] is None and "ResultWriter" not in m
    assert all(s["OutputPath"] is None for s in m["ItemProcessor"]["States"].values())
    # LocalStack limits (PLATFORM.md)
    text = ASL.read_text()
    for unsupported in ("ItemBatcher", "JSONata", "EXPRESS", "QueryLanguage"):
        assert unsupported not in text


def test_lambda_tasks_retry_transient_errors_with_jittered_backoff() -> None:
    tasks = [(n, s) for states, _ in all_state_maps(rendered()) for n, s in states.items() if s["Type"] == "Task"]
    assert {n for n, _ in tasks} == {"Init", "Infer", "Record failure", "Summarize"}
    for name, st in tasks:
        assert st["Resource"] == "arn:aws:states:::lambda:invoke"
        retry = st["Retry"][0]
        assert TRANSIENT <= set(retry["ErrorEquals"]), name
        assert retry["BackoffRate"] > 1 and retry["MaxAttempts"] >= 3 and retry.get("JitterStrategy") == "FULL"
        assert "States.ALL" not in retry["ErrorEquals"]  # bad shards/payloads must not be retried


def test_infer_failure_is_caught_and_recorded() -> None:
    proc = rendered()["States"]["Infer all items"]["ItemProcessor"]["States"]
    catch = proc["Infer"]["Catch"]
    assert catch == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Record failure"}]
    rec = proc["Record failure"]["Parameters"]
    assert rec["FunctionName"].endswith("cosmicai-summarize") and rec["Payload"]["action"] == "record_failure"


@pytest.mark.parametrize("state", ["Init", "Summarize"])
def test_small_state_outputs(state: str) -> None:
    st = rendered()["States"][state]
    assert "ResultSelector" in st and st["ResultPath"].startswith("$.")
