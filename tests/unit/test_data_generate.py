"""make-dataset: determinism, physics sanity (templates through SDSS filters, zero points, sizes)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from cosmicai.data.generate import DatasetArgumentError, generate_block, make_dataset
from cosmicai.data.population import angular_diameter_kpc
from cosmicai.data.render import asinh_mag, asinh_mag_to_nmgy, mag_to_nmgy, sky_sigma_nmgy
from cosmicai.data.sed import BANDS, k_grid
from cosmicai.shards import read_shard

pytest.importorskip("galsim")


@pytest.fixture(scope="module")
def block():
    return generate_block(seed=3, index=0, count=500, size=64)


def test_same_seed_same_objects_and_different_seed_differs() -> None:
    a, b = generate_block(7, 0, 40), generate_block(7, 0, 40)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.magnitudes, b.magnitudes)
    c = generate_block(8, 0, 40)
    assert not np.allclose(a.redshift, c.redshift)


def test_dataset_is_independent_of_shard_size(tmp_path) -> None:
    make_dataset(60, 11, tmp_path / "a", shard_size=20, progress=False)
    make_dataset(60, 11, tmp_path / "b", shard_size=60, progress=False)
    a = [read_shard(p) for p in sorted((tmp_path / "a").glob("part-*.safetensors"))]
    b = read_shard(tmp_path / "b" / "part-00000.safetensors")
    assert [s.n for s in a] == [20, 20, 20]
    np.testing.assert_array_equal(np.concatenate([s.images for s in a]), b.images)
    np.testing.assert_array_equal(np.concatenate([s.object_ids for s in a]), np.arange(60))
    cat = pq.read_table(tmp_path / "a" / "catalog.parquet")
    assert cat.num_rows == 60 and cat.column("shard").to_pylist()[19:21] == [
        "part-00000.safetensors",
        "part-00001.safetensors",
    ]
    np.testing.assert_allclose(cat.column("redshift").to_numpy(), b.redshift)
    assert json.loads((tmp_path / "a" / "dataset.json").read_text())["seed"] == 11
    # ~20 KB per object like the reference partitions (5x32x32 float32 + 5 float32 + id + z).
    assert 20_400 < (tmp_path / "b" / "part-00000.safetensors").stat().st_size / 60 < 20_700


def test_raw_output_keeps_full_cutouts(tmp_path) -> None:
    make_dataset(30, 2, tmp_path, size=48, progress=False, raw=True)
    with np.load(tmp_path / "raw-00000.npz", allow_pickle=False) as f:
        assert f["images"].shape == (30, 5, 48, 48)
    # the pipeline reader crops the same data to 32x32
    assert read_shard(tmp_path / "raw-00000.npz").images.shape == (30, 5, 32, 32)


@pytest.mark.parametrize("kw", [{"n": 0}, {"n": 5, "size": 31}, {"n": 5, "shard_size": 0}])
def test_bad_arguments_are_named(tmp_path, kw) -> None:
    args = {"n": 5, "seed": 0, "out": tmp_path, "progress": False, **kw}
    with pytest.raises(DatasetArgumentError, match="--"):
        make_dataset(**args)


def test_redshift_distribution_is_spectroscopic_like(block) -> None:
    z = block.redshift
    assert 0.08 < np.median(z) < 0.2
    assert np.mean((z > 0.02) & (z < 0.4)) > 0.85
    assert z.max() > 0.45 and z.max() <= 0.8


def test_zero_point_and_asinh_magnitudes() -> None:
    assert mag_to_nmgy(22.5) == pytest.approx(1.0)
    assert mag_to_nmgy(17.5) == pytest.approx(100.0)
    f = np.array([[3.0, 50.0, 120.0, 200.0, 260.0]])
    np.testing.assert_allclose(asinh_mag_to_nmgy(asinh_mag(f)), f, rtol=1e-9)
    # bright objects: asinh magnitudes equal Pogson magnitudes
    np.testing.assert_allclose(asinh_mag(f * 10)[0], 22.5 - 2.5 * np.log10(f[0] * 10), atol=2e-3)


def test_magnitudes_match_summed_image_flux_within_noise(block) -> None:
    total = block.images.astype(np.float64).sum(axis=(2, 3))  # 64x64, nanomaggies
    measured = asinh_mag_to_nmgy(block.magnitudes)
    # noise of the image sum (sky over 64x64 pixels) and of the catalogue photometry
    small = block.columns["r_e_arcsec"] < 3.0  # profile wings well inside the cutout
    sigma = np.sqrt((sky_sigma_nmgy() * 64) ** 2 + (0.02 * measured) ** 2 + (0.01 * total) ** 2)
    pulls = np.abs(total - measured)[small] / sigma[small]
    assert small.sum() > 300
    assert np.mean(pulls < 4.0) > 0.98, np.percentile(pulls, [50, 90, 99])
    # and the noiseless band totals are the true magnitudes through the 22.5 zero point
    true = mag_to_nmgy(np.stack([block.columns[f"true_mag_{b}"] for b in BANDS], axis=1))
    assert np.median(np.abs(total - true)[small] / (sky_sigma_nmgy() * 64)) < 1.0


def test_colours_redden_with_redshift_as_the_templates_say(block) -> None:
    grid = k_grid()
    z = np.linspace(0.1, 0.35, 6)
    for t in (0.0, 1.0):  # E and Sbc templates through the SDSS g, r filters
        f = grid.band_flux(z, np.full(z.size, t))
        g_r = -2.5 * np.log10(f[:, 1] / f[:, 2])
        # the 4000 A break moves from g into r: g-r climbs until it leaves g near z ~ 0.38
        assert np.all(np.diff(g_r) > 0), g_r
        assert g_r[-1] - g_r[0] > 0.4
    # in the generated sample too: early types at 0.3-0.4 are redder in g-r than at 0.1-0.2
    c = block.columns
    early = c["template_type"] < 0.6
    g_r = c["mag_g"] - c["mag_r"]
    lo = early & (c["redshift"] > 0.1) & (c["redshift"] < 0.2)
    hi = early & (c["redshift"] > 0.3) & (c["redshift"] < 0.4)
    assert np.median(g_r[hi]) > np.median(g_r[lo]) + 0.2


def test_angular_sizes_shrink_with_distance(block) -> None:
    c = block.columns
    da = angular_diameter_kpc(c["redshift"].astype(np.float64))
    np.testing.assert_allclose(c["r_e_arcsec"] * da / 206264.806, c["r_e_kpc"], rtol=1e-4)
    assert np.all(np.diff(angular_diameter_kpc(np.linspace(0.01, 0.8, 50))) > 0)
    arcsec_per_kpc = c["r_e_arcsec"] / c["r_e_kpc"]
    order = np.argsort(c["redshift"])
    assert np.all(np.diff(arcsec_per_kpc[order]) <= 1e-6)


def test_colour_knn_recovers_redshift(block) -> None:
    # Small version of the signal check: four colours alone carry the redshift.
    from cosmicai.data.train import Arrays, colour_knn_baseline

    more = generate_block(3, 1, 500)
    tr = Arrays(block.images[:, :, :1, :1], block.magnitudes, block.redshift, block.object_ids)
    te = Arrays(more.images[:, :, :1, :1], more.magnitudes, more.redshift, more.object_ids)
    assert colour_knn_baseline(tr, te)["r2"] > 0.75
