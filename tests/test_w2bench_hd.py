"""DenseICNN, Mix3, the HD pair and its metrics against reference values (otlib.w2bench;
Korotin et al. 2021, arXiv:2106.01954)."""

from __future__ import annotations

import functools
import importlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.w2bench import DIMS, PUBLISHED, cos_similarity, hd, l2_uvp, l2_uvp_inverse, load_dense_icnn
from otlib.w2bench.__main__ import main
from otlib.w2bench.dense_icnn import dense_icnn_batch, dense_icnn_grad, load_dense_icnn_params
from otlib.w2bench.metrics import identity_l2_uvp, linear_l2_uvp
from otlib.w2bench.mix3 import mix3_covariance, mix3_params, sample_mix3
from otlib.core.paths import data_dir
import otlib.w2bench.files as files_mod

# ``otlib.w2bench.hd`` (the attribute) is the function hd(); the module is reached through importlib.
hd_mod = importlib.import_module("otlib.w2bench.hd")

REF_DIMS = [2, 4, 8, 16, 32, 64, 128]


def _reference(shared: Path, dim: int) -> dict[str, np.ndarray]:
    return dict(np.load(shared / "reference" / f"hd_{dim}.npz"))


@pytest.mark.parametrize("dim", REF_DIMS)
def test_potentials_match_reference_float64(w2bench_data: Path, w2bench_shared: Path, dim: int) -> None:
    ref = _reference(w2bench_shared, dim)
    with jax.enable_x64(True):
        x = jnp.asarray(ref["x"], jnp.float64)
        for v in (1, 2):
            params = load_dense_icnn_params(w2bench_data / f"{dim}_v{v}.pt")
            psi, grad = dense_icnn_batch(params, x), dense_icnn_grad(params, x)
            assert psi.dtype == jnp.float64
            np.testing.assert_allclose(psi, ref[f"psi_v{v}"], rtol=1e-5)
            np.testing.assert_allclose(grad, ref[f"grad_v{v}"], rtol=1e-5,
                                       atol=1e-5 * np.abs(ref[f"grad_v{v}"]).max())


def test_load_dense_icnn_float32(w2bench_data: Path, w2bench_shared: Path) -> None:
    ref = _reference(w2bench_shared, 8)
    psi = load_dense_icnn(w2bench_data / "8_v2.pt")
    out = psi(ref["x"].astype(np.float32))
    assert out.shape == (10,) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref["psi_v2"], rtol=1e-5)


@pytest.mark.parametrize("dim", REF_DIMS)
def test_mix3_parameters_match_reference(w2bench_shared: Path, dim: int) -> None:
    ref = _reference(w2bench_shared, dim)
    centres, maps = mix3_params(dim)
    assert centres.dtype == np.float32 and maps.dtype == np.float32
    np.testing.assert_array_equal(centres, ref["mix3_centres"])
    np.testing.assert_array_equal(maps, ref["mix3_maps"])
    np.testing.assert_allclose(np.diag(mix3_covariance(centres, maps)), 1.0, atol=1e-6)  # Var(P) = D


def test_mix3_params_leave_global_numpy_state_alone() -> None:
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    mix3_params(4)
    assert np.random.rand() == expected


def test_mix3_sampler_moments() -> None:
    centres, maps = mix3_params(4)
    x = np.asarray(sample_mix3(jax.random.key(0), 2 ** 16, jnp.asarray(centres), jnp.asarray(maps)))
    assert x.dtype == np.float32 and x.shape == (2 ** 16, 4)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.02)
    np.testing.assert_allclose(np.cov(x.T), mix3_covariance(centres, maps), atol=0.03)


def test_benchmark_pair(w2bench_data: Path) -> None:
    bench = hd(2)
    assert bench is hd(2) and bench.dim == 2 and bench.var_source == 2.0
    assert abs(float(bench.var_target) - 2.0) < 0.02
    x = bench.sample_source(jax.random.key(1), 4096)
    y = bench.transport(x)
    assert y.shape == x.shape and y.dtype == jnp.float32
    # Q is standardised: mean ~ 0, total variance ~ D (as standardize_potential)
    np.testing.assert_allclose(np.asarray(y).mean(axis=0), 0.0, atol=0.06)
    assert abs(float(np.asarray(y).var(axis=0).sum()) - 2.0) < 0.1
    # T* is the gradient of the potential, and the pytree passes through jit
    grad_phi = jax.grad(lambda z: bench.potential(z).sum())(x[:16])
    np.testing.assert_allclose(grad_phi, y[:16], rtol=1e-4, atol=1e-5)
    jitted = jax.jit(lambda b, z: b.transport(z))(bench, x[:16])
    np.testing.assert_allclose(jitted, y[:16], rtol=1e-6, atol=1e-6)
    # metrics of the ground truth itself
    key = jax.random.key(2)
    assert l2_uvp(bench.transport, bench, key, 4096) < 1e-8
    assert cos_similarity(bench.transport, bench, key, 4096) == pytest.approx(1.0, abs=1e-6)
    ident = l2_uvp_inverse(lambda z: z, bench, key, 4096)
    assert ident == pytest.approx(l2_uvp(lambda z: z, bench, key, 4096), rel=0.02)  # Var(P) ~ Var(Q)


def test_chunk_bounds_memory_and_changes_no_sample(w2bench_data: Path) -> None:
    """The rows scored depend on the key and n alone: any chunk size, and the traceable evaluator, give the
    same value; the first rows of a larger draw are the rows of a smaller one."""
    from otlib.w2bench import coupled_sample, evaluator

    bench, key = hd(2), jax.random.key(3)
    shift = lambda z: 0.9 * z + 0.1  # noqa: E731
    values = {chunk: l2_uvp(shift, bench, key, 3000, chunk=chunk) for chunk in (1, 1024, 2000, 4096)}
    assert max(values.values()) - min(values.values()) < 1e-5 * max(values.values()), values
    traced = jax.jit(evaluator(bench, lambda state, x: shift(x), n=3000))(None, key)
    assert float(traced["l2_uvp"]) == pytest.approx(values[1024], rel=1e-5)
    small, large = coupled_sample(bench, key, 1500)[0], coupled_sample(bench, key, 3000)[0]
    np.testing.assert_array_equal(small, large[:1500])


def test_hd_rejects_unknown_dim() -> None:
    with pytest.raises(ValueError, match="2, 4, 8, 16, 32, 64, 128, 256"):
        hd(5)


def test_committed_constants_file() -> None:
    doc = json.loads(hd_mod.constants_path().read_text())
    assert doc["n_samples"] >= 2 ** 20 and "key" in doc and "0.011%" in doc["note"]
    assert sorted(map(int, doc["dims"])) == REF_DIMS
    for d, entry in doc["dims"].items():
        assert len(entry["shift"]) == int(d) and entry["sha256_v1"] == files_mod.SHA256[f"{d}_v1.pt"]


def test_constants_estimated_and_cached_when_missing(w2bench_data: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A D absent from the committed file (as D = 256 is) gets its constants estimated once and cached."""
    monkeypatch.setattr(hd_mod, "constants_path", lambda: tmp_path / "absent.json")
    monkeypatch.setattr(files_mod, "default_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(hd_mod, "_CACHE", {})
    monkeypatch.setattr(hd_mod, "estimate_constants",
                        functools.partial(hd_mod.estimate_constants, n_samples=2 ** 16))
    bench = hd(4)
    assert "estimating" in capsys.readouterr().err
    cached = json.loads((tmp_path / "cache" / "hd_constants.json").read_text())["dims"]["4"]
    committed = json.loads(data_dir("w2bench_hd_constants.json").read_text())["dims"]["4"]
    assert cached["scale"] == pytest.approx(committed["scale"], rel=0.01)
    assert float(bench.scale) == pytest.approx(cached["scale"])
    monkeypatch.setattr(hd_mod, "_CACHE", {})
    monkeypatch.setattr(hd_mod, "estimate_constants", None)  # must not be called again
    assert float(hd(4).scale) == pytest.approx(cached["scale"])


@pytest.mark.parametrize("dim", [2, 8])
def test_baselines_match_published(w2bench_data: Path, dim: int) -> None:
    bench = hd(dim)
    ident = identity_l2_uvp(bench, jax.random.key(10), 2 ** 14)
    lin = linear_l2_uvp(bench, jax.random.key(11), 2 ** 14)
    assert abs(ident - PUBLISHED[dim]["identity"]) <= 3.5, ident
    assert abs(lin - PUBLISHED[dim]["linear"]) <= 1.0, lin


def test_cli_baselines(w2bench_data: Path, capsys) -> None:
    assert main(["baselines", "--dims", "2", "--seeds", "1", "--n", "4096"]) == 0
    out = capsys.readouterr().out
    assert "14.1" in out and "32.7" in out
    assert main(["baselines", "--dims", "3"]) == 2
    assert "2, 4, 8" in capsys.readouterr().err
    assert set(PUBLISHED) == set(DIMS)
