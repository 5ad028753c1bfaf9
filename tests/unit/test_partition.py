"""partition: round trip of every object exactly once, sizes near the target, manifest, idempotency."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from cosmicai.data.partition import (
    MIB,
    PartitionError,
    canonical_safetensors,
    objects_per_shard,
    partition,
)
from cosmicai.shards import read_shard, shard_to_bytes


def _read_all(folder):
    return [read_shard(p) for p in sorted(folder.glob("part-*.safetensors"))]


def test_round_trip_mixed_formats_sizes_and_manifest(tmp_path, make_shard) -> None:
    src = tmp_path / "src"
    srcs = [
        make_shard(120, seed=1, id_start=0, fmt="safetensors", directory=src),
        make_shard(90, seed=2, id_start=1000, fmt="npz", size=64, directory=src),
        make_shard(75, seed=3, id_start=5000, fmt="safetensors", directory=src),
    ]
    originals = [read_shard(p) for p in srcs]
    out = tmp_path / "out"
    target = 1.0  # MiB -> 51 objects per shard
    res = partition(srcs, str(out), target, progress=False)
    shards = _read_all(out)
    assert res.objects == 285 and len(shards) == len(res.shards) == 6
    ids = np.concatenate([s.object_ids for s in shards])
    want = np.concatenate([o.object_ids for o in originals])
    np.testing.assert_array_equal(ids, want)  # every object once, input order
    np.testing.assert_array_equal(
        np.concatenate([s.images for s in shards]), np.concatenate([o.images for o in originals])
    )
    np.testing.assert_array_equal(
        np.concatenate([s.redshift for s in shards]), np.concatenate([o.redshift for o in originals])
    )
    for s in shards[:-1]:  # all but the remainder land within 10% of the target
        assert s.n == objects_per_shard(target, True)
    for p in sorted(out.glob("part-*"))[:-1]:
        assert abs(p.stat().st_size - target * MIB) / (target * MIB) < 0.10
    man = json.loads((out / "manifest.json").read_text())
    assert man["format"] == "cosmicai.manifest" and man["version"] == 1 and man["objects"] == 285
    for e, p in zip(man["shards"], sorted(out.glob("part-*")), strict=True):
        assert e["key"] == p.name and e["bytes"] == p.stat().st_size
        assert e["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
        assert e["count"] == read_shard(p).n


def test_rerun_is_idempotent_and_prunes_stale_shards(tmp_path, make_shard) -> None:
    src = make_shard(200, seed=4)
    out = tmp_path / "out"
    first = partition([src], str(out), 1.0, progress=False)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*")}
    again = partition([src], str(out), 1.0, progress=False)
    assert (first.uploaded, again.uploaded, again.skipped) == (4, 0, 4)
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in out.glob("part-*")}
    bigger = partition([src], str(out), 2.0, progress=False)
    assert bigger.removed == ["part-00002.safetensors", "part-00003.safetensors"]
    assert sum(s.n for s in _read_all(out)) == 200


def test_reference_pt_partitions_need_renumbering(tmp_path, make_shard) -> None:
    a = make_shard(30, seed=5, fmt="pt", name="part_a.pt")
    b = make_shard(30, seed=6, fmt="pt", name="part_b.pt")
    with pytest.raises(PartitionError, match="--renumber"):
        partition([a, b], str(tmp_path / "out"), 1.0, progress=False)
    res = partition([a, b], str(tmp_path / "out2"), 1.0, renumber=True, progress=False)
    ids = np.concatenate([s.object_ids for s in _read_all(tmp_path / "out2")])
    np.testing.assert_array_equal(ids, np.arange(60))
    assert res.objects == 60


def test_bad_inputs_are_named(tmp_path, make_shard) -> None:
    with pytest.raises(PartitionError, match="no such file"):
        partition([tmp_path / "nope"], str(tmp_path / "o"), 10, progress=False)
    with pytest.raises(PartitionError, match="target-mb"):
        partition([make_shard(5)], str(tmp_path / "o"), 0, progress=False)
    z = make_shard(5, seed=1, id_start=0, name="z.safetensors")
    noz = make_shard(5, seed=2, id_start=10, with_redshift=False, name="noz.safetensors")
    with pytest.raises(PartitionError, match="lacks redshift"):
        partition([z, noz], str(tmp_path / "o"), 10, progress=False)


def test_canonical_bytes_are_stable(shard_factory) -> None:
    shard = shard_factory(40)
    once = {canonical_safetensors(shard_to_bytes(shard)) for _ in range(5)}
    assert len(once) == 1
    from safetensors.numpy import load

    np.testing.assert_array_equal(load(once.pop())["images"], shard.images)


def _positioned(shard, seed: int):
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    return replace(shard, ra=rng.uniform(0, 360, shard.n), dec=rng.uniform(-90, 90, shard.n))


def test_positions_survive_re_sharding(tmp_path, shard_factory) -> None:
    from cosmicai.shards import write_shard

    srcs = []
    for k in range(2):
        s = _positioned(shard_factory(70, seed=k, id_start=100 * k), seed=k)
        write_shard(s, tmp_path / f"s{k}.safetensors")
        srcs.append(s)
    res = partition(
        [tmp_path / "s0.safetensors", tmp_path / "s1.safetensors"], str(tmp_path / "out"), 1.0, progress=False
    )
    shards = _read_all(tmp_path / "out")
    assert res.objects == 140 and shards[0].n == objects_per_shard(1.0, True, True)
    assert objects_per_shard(100, True, True) < objects_per_shard(100, True)  # ra/dec take 16 bytes an object
    np.testing.assert_array_equal(np.concatenate([s.ra for s in shards]), np.concatenate([s.ra for s in srcs]))
    np.testing.assert_array_equal(np.concatenate([s.dec for s in shards]), np.concatenate([s.dec for s in srcs]))
    assert "rejected" not in json.loads((tmp_path / "out" / "manifest.json").read_text())  # files never skip objects


def test_sources_must_agree_on_positions(tmp_path, shard_factory) -> None:
    from cosmicai.shards import write_shard

    write_shard(_positioned(shard_factory(5, id_start=0), 1), tmp_path / "a.safetensors")
    write_shard(shard_factory(5, id_start=10), tmp_path / "b.safetensors")
    with pytest.raises(PartitionError, match="lacks sky positions"):
        partition([tmp_path / "a.safetensors", tmp_path / "b.safetensors"], str(tmp_path / "o"), 1.0, progress=False)


def test_a_source_may_switch_from_labelled_to_unlabelled(shard_factory) -> None:
    """FITS input orders labelled objects first; the switch closes the shard instead of failing."""
    from cosmicai.data.partition import iter_output_shards

    items = [
        ("a", shard_factory(5, id_start=0)),
        ("b", shard_factory(4, id_start=5)),
        ("c", shard_factory(6, id_start=20, with_redshift=False)),
    ]
    out = list(iter_output_shards(items, 7, 1.0, split_on_labels=True))
    assert [(s.n, s.has_redshift) for s in out] == [(7, True), (2, True), (6, False)]
    with pytest.raises(PartitionError, match="lacks redshift"):
        list(iter_output_shards(items, 7, 1.0))
