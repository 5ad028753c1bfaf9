"""runstore's streaming helpers: a JSON array read element by element, JSON Lines written from a
spool and read back, and the compact set of listed keys."""

from __future__ import annotations

import json

import pytest

from cosmicai.runstore import JsonLinesSpool, ListedKeys, RunStoreError, iter_json_array, iter_json_lines
from fanout_s3 import MemoryS3


def _store(body: bytes, key: str = "r/doc.json") -> MemoryS3:
    s3 = MemoryS3("b")
    s3.buckets["b"][key] = body
    return s3


DOCS = [
    {"item_id": "i-0", "shards": [{"key": "in/a", "count": 12345}], "objects": None},
    17,
    -2.5e-3,
    "ünïcødé ✓",
    None,
    True,
    False,
    [],
    {},
    [1, [2, [3]]],
    1234567890123,
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 16])
@pytest.mark.parametrize("indent", [None, 2])
def test_json_array_elements_at_every_read_size(chunk: int, indent: int | None) -> None:
    """Reads that split numbers, strings, multi-byte characters and separators give the same elements."""
    s3 = _store(json.dumps(DOCS, indent=indent, ensure_ascii=False).encode())
    assert list(iter_json_array(s3, "b", "r/doc.json", chunk_bytes=chunk)) == DOCS


@pytest.mark.parametrize("body", [b"[]", b" [ ] \n", b"\n[\n]"])
def test_empty_json_array(body: bytes) -> None:
    assert list(iter_json_array(_store(body), "b", "r/doc.json", chunk_bytes=1)) == []


@pytest.mark.parametrize(
    "body, why",
    [
        (b'{"a": 1}', "not a JSON array"),
        (b"", "not a JSON array"),
        (b'[{"a": 1}, {"b": ', "not valid JSON"),
        (b'[{"a": 1} {"b": 2}]', "expected ',' or ']'"),
        (b"[1, 2", "expected ',' or ']'"),
        (b"[1, 2] 3", "data after the JSON array"),
        (b"[1, \xff]", "not UTF-8"),
    ],
)
def test_a_bad_array_is_a_named_error(body: bytes, why: str) -> None:
    with pytest.raises(RunStoreError, match=why) as exc:
        list(iter_json_array(_store(body), "b", "r/doc.json", chunk_bytes=4))
    assert "s3://b/r/doc.json" in str(exc.value)


def test_plan_sized_array_holds_one_element_at_a_time() -> None:
    """The buffer never holds much more than one read and one element, whatever the array's length."""
    item = {"item_id": "x" * 40, "shards": [{"key": "in/" + "k" * 60, "name": "n" * 50, "bytes": 10**8, "count": 5113}]}
    body = json.dumps([item] * 5000).encode()  # ~0.9 MB

    class Reads:
        def __init__(self) -> None:
            self.data, self.pos, self.most = body, 0, 0

        def read(self, n: int) -> bytes:
            self.most = max(self.most, n)
            out = self.data[self.pos : self.pos + n]
            self.pos += len(out)
            return out

    reads = Reads()

    class S3:
        def get_object(self, Bucket: str, Key: str) -> dict:
            return {"Body": reads}

    n = 0
    for got in iter_json_array(S3(), "b", "k", chunk_bytes=1024):
        assert got == item
        n += 1
        assert reads.pos <= n * (len(json.dumps(item)) + 2) + 2 * 1024, "read ahead of the elements parsed"
    assert n == 5000 and reads.most == 1024


def test_json_lines_round_trip_through_a_spool() -> None:
    s3 = MemoryS3("b")
    with JsonLinesSpool() as spool:
        for doc in DOCS:
            spool.write(doc)
        size = spool.upload(s3, "b", "r/summary/rows.jsonl")
        assert spool.rows == len(DOCS)
    body = s3.buckets["b"]["r/summary/rows.jsonl"]
    assert size == len(body) and body.count(b"\n") == len(DOCS)
    assert list(iter_json_lines(s3, "b", "r/summary/rows.jsonl", chunk_bytes=5)) == DOCS
    with JsonLinesSpool() as empty:
        assert empty.upload(s3, "b", "r/summary/none.jsonl") == 0
    assert list(iter_json_lines(s3, "b", "r/summary/none.jsonl")) == []
    with pytest.raises(ValueError):  # NaN is not JSON: refused as put_json refuses it
        JsonLinesSpool().write({"x": float("nan")})


def test_a_truncated_json_lines_object_is_a_named_error() -> None:
    with pytest.raises(RunStoreError, match="not terminated"):
        list(iter_json_lines(_store(b'{"a": 1}\n{"b": 2}', "r/x.jsonl"), "b", "r/x.jsonl"))
    with pytest.raises(RunStoreError, match="not valid JSON"):
        list(iter_json_lines(_store(b'{"a": 1}\n{"b"\n', "r/x.jsonl"), "b", "r/x.jsonl"))


def test_listed_keys_answer_membership_and_count_the_keys_nobody_took() -> None:
    s3 = MemoryS3("b", list_prefixes=("r/",))
    keys = [f"r/workers/item-{i:05d}.json" for i in range(2500)]  # three listing pages
    for k in keys + ["r/workers/notes.txt", "r/other/item-00001.json"]:
        s3.buckets["b"][k] = b"{}"
    listed = ListedKeys(s3, "b", "r/workers/", suffix=".json")
    assert len(listed) == 2500 and listed.digests.nbytes == 16 * 2500
    assert keys[0] in listed and keys[-1] in listed
    assert "r/workers/notes.txt" not in listed and "r/other/item-00001.json" not in listed
    assert "r/workers/item-99999.json" not in listed
    assert listed.untaken == 2500
    assert all(listed.take(k) for k in keys[:2497]) and not listed.take("r/workers/absent.json")
    assert listed.take(keys[0])  # taking twice counts once
    assert listed.untaken == 3
    assert list(listed.untaken_keys(s3)) == keys[2497:]
    assert len(ListedKeys(s3, "b", "r/none/")) == 0 and "r/none/x" not in ListedKeys(s3, "b", "r/none/")
