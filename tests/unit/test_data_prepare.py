"""prepare: cleaning removes exactly the injected bad rows, crops 64->32, reproducible 70/15/15 split."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from cosmicai.data.prepare import PrepareError, prepare, split_of
from cosmicai.shards import centre_crop, read_shard

BAD = {  # row -> reason
    3: "bad_magnitude",
    4: "bad_magnitude",
    5: "bad_magnitude",
    10: "bad_image",
    11: "bad_image",
    20: "missing_redshift",
    21: "missing_redshift",
    30: "duplicate_id",
}


@pytest.fixture
def raw(tmp_path, shard_factory):
    """Two 64x64 npz files (200 objects) with bad rows injected at known places."""
    a, b = shard_factory(120, seed=1, size=64), shard_factory(80, seed=2, size=64, id_start=120)
    a.magnitudes[3, 2] = np.nan
    a.magnitudes[4, 0] = -9999.0  # SDSS failed-photometry sentinel
    a.magnitudes[5, 4] = 99.0
    a.images[10, 1, 32, 32] = np.inf  # inside the central crop (outside it would be cropped away)
    a.images[11, 3] = 0.0  # masked band
    a.redshift[20] = np.nan
    a.redshift[21] = -0.5
    a.object_ids[30] = 7  # duplicate of row 7
    a.magnitudes[7, 0] = np.nan  # ...but row 7 is bad itself: still, the first valid id wins
    b.redshift[0] = 2.5  # outlier (flagged, not removed)
    paths = []
    for name, s in (("a.npz", a), ("b.npz", b)):
        p = tmp_path / "raw" / name
        p.parent.mkdir(exist_ok=True)
        np.savez(p, object_id=s.object_ids, images=s.images, magnitudes=s.magnitudes, redshift=s.redshift)
        paths.append(p)
    return tmp_path / "raw", a, b


def test_cleaning_removes_exactly_the_injected_rows(tmp_path, raw) -> None:
    src, a, b = raw
    rep = prepare([src], tmp_path / "out")
    expect = {"bad_magnitude": 4, "bad_image": 2, "missing_redshift": 2, "duplicate_id": 0}
    # row 7 (NaN magnitude) is removed, so row 30 with the same id is the first valid one: kept.
    assert rep.removed == expect
    assert rep.flagged == 1 and rep.examples["redshift_outlier"] == [120]
    table = pq.read_table(tmp_path / "out" / "objects.parquet").to_pydict()
    status_a = table["status"][:120]
    removed_rows = {i for i, s in enumerate(status_a) if s}
    assert removed_rows == {3, 4, 5, 7, 10, 11, 20, 21}
    assert sum(rep.splits.values()) == 200 - 8 - 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["removed_total"] == 8 and "SDSS sentinels" in report["rules"]["bad_magnitude"]


def test_duplicate_ids_after_first_valid_are_removed(tmp_path, shard_factory) -> None:
    s = shard_factory(40, seed=3, size=64)
    s.object_ids[30] = 5
    p = tmp_path / "dup.npz"
    np.savez(p, object_id=s.object_ids, images=s.images, magnitudes=s.magnitudes, redshift=s.redshift)
    rep = prepare([p], tmp_path / "out")
    assert rep.removed["duplicate_id"] == 1 and rep.examples["duplicate_id"] == [5]


def test_crop_and_split_are_exact_and_reproducible(tmp_path, raw) -> None:
    src, a, _ = raw
    prepare([src], tmp_path / "o1", seed=4)
    prepare([src], tmp_path / "o2", seed=4)
    splits = {}
    for name in ("train", "val", "test"):
        s1 = read_shard(next((tmp_path / "o1" / name).glob("part-*")))
        s2 = read_shard(next((tmp_path / "o2" / name).glob("part-*")))
        np.testing.assert_array_equal(s1.object_ids, s2.object_ids)
        splits[name] = set(s1.object_ids.tolist())
        assert s1.images.shape[1:] == (5, 32, 32)
        row = int(np.nonzero(a.object_ids == s1.object_ids[0])[0][0]) if s1.object_ids[0] < 120 else None
        if row is not None:
            np.testing.assert_array_equal(s1.images[0], centre_crop(a.images[row : row + 1])[0])
    assert (
        not (splits["train"] & splits["val"])
        and not (splits["train"] & splits["test"])
        and not (splits["val"] & splits["test"])
    )
    n = 191
    assert [len(splits[k]) for k in ("train", "val", "test")] == [
        round(0.7 * n),
        round(0.15 * n),
        n - round(0.7 * n) - round(0.15 * n),
    ]


def test_split_ignores_input_order_and_depends_on_seed() -> None:
    ids = np.arange(1000, dtype=np.int64)
    perm = np.random.default_rng(0).permutation(ids)
    a = dict(zip(ids.tolist(), split_of(ids, 1).tolist(), strict=True))
    b = dict(zip(perm.tolist(), split_of(perm, 1).tolist(), strict=True))
    assert a == b
    assert np.bincount(split_of(ids, 1)).tolist() == [700, 150, 150]
    assert (split_of(ids, 1) != split_of(ids, 2)).any()


def test_unusable_input_is_named(tmp_path, shard_factory) -> None:
    s = shard_factory(5, with_redshift=False)
    p = tmp_path / "noz.npz"
    np.savez(p, object_id=s.object_ids, images=s.images, magnitudes=s.magnitudes)
    with pytest.raises(PrepareError, match="noz.npz: no redshift"):
        prepare([p], tmp_path / "out")
    q = tmp_path / "small.npz"
    np.savez(q, object_id=s.object_ids, images=s.images[:, :, :16, :16], magnitudes=s.magnitudes, redshift=np.zeros(5))
    with pytest.raises(PrepareError, match="small.npz: images have shape"):
        prepare([q], tmp_path / "out")
