"""ConvICNN64, ResNet_G and the CelebA64 pair against goldens of the official PyTorch code (otlib.w2bench).

The fixtures in ``../shared/w2bench/celeba64_fixtures/`` are the exact architectures with random weights
(the upstream CelebA64 files are not available to the tests), with the official code's float64 outputs.
The second potential of the fixture pair ("v2") is v1 with every 4-D weight rotated by 180 degrees
(:func:`otlib.w2bench.conv_icnn64.flip_kernels`). Evaluating these nets is costly on a CPU, so each test
uses few samples and the jitted functions are shared (the same shapes compile once).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.core.files import ChecksumError, git_blob_sha1
from otlib.core.paths import shared_dir
from otlib.w2bench import celeba
from otlib.w2bench.conv_icnn64 import (DIM, as_images, conv_icnn64_layers, flip_kernels, load_conv_icnn64,
                                       load_conv_icnn64_params)
from otlib.w2bench.resnet_g import load_resnet_g, load_resnet_g_params, resnet_g_layers
from otlib.w2bench.torchfile import CorruptCheckpointError


@pytest.fixture(scope="module")
def fixtures() -> Path:
    folder = shared_dir("w2bench", "celeba64_fixtures")
    if not (folder / "convicnn64_v1.pt").is_file() or not (folder / "resnet_g_golden.npz").is_file():
        pytest.skip(f"CelebA64 fixtures not found at {folder} (the read-only shared folder); these tests need them")
    return folder


@pytest.fixture(scope="module")
def icnn_golden(fixtures: Path) -> dict[str, np.ndarray]:
    return dict(np.load(fixtures / "convicnn64_golden.npz"))


@pytest.fixture(scope="module")
def g_golden(fixtures: Path) -> dict[str, np.ndarray]:
    return dict(np.load(fixtures / "resnet_g_golden.npz"))


@pytest.fixture(scope="module")
def pair(fixtures: Path) -> celeba.CelebA64Benchmark:
    """The fixture pair (v1, flipped v1) with the fixture generator; the variances are placeholders."""
    p1 = load_conv_icnn64_params(fixtures / "convicnn64_v1.pt")
    return celeba.CelebA64Benchmark(stage="fixture", generator=load_resnet_g_params(fixtures / "resnet_g.pt"),
                                    params_1=p1, params_2=flip_kernels(p1), var_source=jnp.float32(1.0),
                                    var_target=jnp.float32(1.0))


def _assert_rel(got, want, rtol: float) -> None:
    """Relative L2 error of each sample (row) at most rtol, and max abs error at most rtol * max |want|.

    A row whose norm is below 1e-3 of the largest (grad psi at the saturated point x = 0, about 3e-13) is
    measured against 1e-3 of the largest norm instead.
    """
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    g, w = got.reshape(len(got), -1), want.reshape(len(want), -1)
    norms = np.linalg.norm(w, axis=1)
    rel = np.linalg.norm(g - w, axis=1) / np.maximum(norms, 1e-3 * norms.max())
    scale = np.abs(w).max()
    assert rel.max() <= rtol and np.abs(g - w).max() <= rtol * scale, (rel.max(), np.abs(g - w).max() / scale)


# ---------------------------------------------------------------------------------------------------- ConvICNN64

def test_conv_icnn64_float32(fixtures: Path, icnn_golden: dict, pair: celeba.CelebA64Benchmark) -> None:
    x = icnn_golden["x"]  # (8, 3, 64, 64) float32
    psi = load_conv_icnn64(fixtures / "convicnn64_v1.pt")
    out = psi(x)
    assert out.shape == (8,) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, icnn_golden["psi_v1"], rtol=1e-5)
    grad = psi.grad(x)
    assert grad.shape == x.shape and grad.dtype == jnp.float32
    _assert_rel(grad, icnn_golden["grad_v1"], 1e-5)
    # the pair, on flattened images (v2 = v1 flipped): the potential and T* = (grad psi_1 + grad psi_2) / 2
    flat = x.reshape(8, DIM)
    np.testing.assert_allclose(pair.potential(flat), icnn_golden["psi_pair"], rtol=1e-5)
    t_star = pair.transport(flat)
    assert t_star.shape == (8, DIM)
    _assert_rel(as_images(t_star), icnn_golden["T_star"], 1e-5)
    np.testing.assert_allclose(psi(flat), out, rtol=1e-6)  # flattened and NCHW inputs agree


def test_conv_icnn64_float64(fixtures: Path, icnn_golden: dict, pair: celeba.CelebA64Benchmark) -> None:
    """Sample 4 (a P-sample) in float64: every intermediate, psi, grad psi and T*.

    psi and the intermediates agree to ~1e-14. The golden gradients carry an error of their own of about
    1e-9 relative: a Richardson-extrapolated central difference of the float64 psi (which matches the
    golden psi to 1e-15) agrees with our directional derivative to 3e-10 and with the golden's to 1.7e-9.
    So the gradients are held to 5e-9.
    """
    with jax.enable_x64(True):
        x = jnp.asarray(icnn_golden["x"][4:5], jnp.float64)
        layers = jax.jit(conv_icnn64_layers)(pair.params_1, x)
        for name in ("quad0", "pre1", "h1", "pre2", "h2", "pre3", "h3"):
            _assert_rel(layers[name], icnn_golden[f"v1_x4_{name}"][None], 1e-12)
        np.testing.assert_allclose(layers["net"][0], icnn_golden["v1_x4_net"], rtol=1e-12)
        np.testing.assert_allclose(pair.potential(x.reshape(1, DIM)), icnn_golden["psi_pair"][4:5], rtol=1e-12)
        t_star = pair.transport(x.reshape(1, DIM))
        assert t_star.dtype == jnp.float64
        _assert_rel(as_images(t_star), icnn_golden["T_star"][4:5], 5e-9)


def test_conv_icnn64_refuses_bad_inputs(fixtures: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected images of shape"):
        as_images(jnp.zeros((2, 100)))
    with pytest.raises(CorruptCheckpointError, match="not a ConvICNN64 state dict"):
        load_conv_icnn64(fixtures / "resnet_g.pt")
    with pytest.raises(CorruptCheckpointError, match="not a ResNet_G state dict"):
        load_resnet_g(fixtures / "convicnn64_v1.pt")
    truncated = tmp_path / "Early_v1.pt"
    truncated.write_bytes((fixtures / "convicnn64_v1.pt").read_bytes()[:1 << 20])
    with pytest.raises(CorruptCheckpointError, match="Early_v1.pt"):
        load_conv_icnn64(truncated)


# ---------------------------------------------------------------------------------------------------- ResNet_G

def test_resnet_g_float32(fixtures: Path, g_golden: dict) -> None:
    G = load_resnet_g(fixtures / "resnet_g.pt")
    out = G(g_golden["z"])
    assert out.shape == (8, 3, 64, 64) and out.dtype == jnp.float32
    _assert_rel(out, g_golden["G_z"], 1e-5)


def test_resnet_g_float64(fixtures: Path, g_golden: dict, pair: celeba.CelebA64Benchmark) -> None:
    with jax.enable_x64(True):
        layers = jax.jit(resnet_g_layers)(pair.generator, jnp.asarray(g_golden["z"][:1], jnp.float64))
    for name, golden in (("stem", "G_z0_stem"), ("block1", "G_z0_resnet2"), ("block3", "G_z0_resnet5"),
                         ("pre_tanh", "G_z0_pre_tanh")):
        _assert_rel(layers[name], g_golden[golden][None], 1e-12)
    assert layers["image"].dtype == jnp.float64
    _assert_rel(layers["image"], g_golden["G_z"][:1], 1e-12)


def test_sampler_composition_and_variance(g_golden: dict, pair: celeba.CelebA64Benchmark) -> None:
    """x = G(z) + 0.01 eps (the golden P-samples), and Var(P) = sum_d Var(G(z)_d) + 12288 * 0.01^2."""
    z, eps = g_golden["z"], np.concatenate([g_golden["eps"], np.zeros_like(g_golden["eps"])])
    x = pair.source_from_latents(jnp.asarray(z), jnp.asarray(eps))
    assert x.shape == (8, DIM) and x.dtype == jnp.float32
    np.testing.assert_allclose(as_images(x[:4]), g_golden["P_samples"], atol=1e-5)
    g = g_golden["G_z"].reshape(8, DIM)
    want = g.var(axis=0).sum() + DIM * 0.01 ** 2
    np.testing.assert_allclose(celeba.source_variance(pair.generator, z, chunk=8), want, rtol=1e-5)
    np.testing.assert_allclose(DIM * 0.01 ** 2, 1.2288)


def test_sample_source_draws_the_documented_latents(pair: celeba.CelebA64Benchmark) -> None:
    key = jax.random.key(3)
    kz, ke = jax.random.split(key)
    x = pair.sample_source(key, 8)
    assert x.shape == (8, DIM) and x.dtype == jnp.float32
    np.testing.assert_array_equal(
        x, pair.source_from_latents(jax.random.normal(kz, (8, 128)), jax.random.normal(ke, (8, DIM))))


def test_chunked_matches_one_pass() -> None:
    """The conv nets run over chunks of rows (a lax.map loop and a remainder); the rows are independent."""
    from otlib.w2bench.celeba import _chunked
    x = jnp.arange(7 * 3, dtype=jnp.float32).reshape(7, 3)
    fn = lambda a: jnp.cumsum(a, axis=1) + jnp.sin(a)  # noqa: E731  row by row
    for chunk in (1, 2, 3, 7, 10):
        np.testing.assert_array_equal(_chunked(fn, x, chunk), fn(x))


def test_metrics_on_stored_pairs(pair: celeba.CelebA64Benchmark, g_golden: dict, icnn_golden: dict) -> None:
    """T* scores 0 against itself (cos 1); the identity scores ||X - Y||^2 / Var and cos 0 both ways."""
    x = jnp.asarray(icnn_golden["x"][4:8].reshape(4, DIM))
    y = jnp.asarray(icnn_golden["T_star"][4:8].reshape(4, DIM), jnp.float32)
    bench = celeba.CelebA64Benchmark(stage="x", generator=pair.generator, params_1=pair.params_1,
                                     params_2=pair.params_2, var_source=jnp.float32(3.0), var_target=jnp.float32(2.0))
    exact = celeba.evaluate(bench, jax.random.key(0), lambda _: y, n=4, chunk=4, pairs=(x, y))  # T* on these x
    assert exact["l2_uvp_fwd"] == 0.0 and exact["cos_fwd"] == pytest.approx(1.0)
    ident = celeba.identity_scores(bench, jax.random.key(0), n=4, chunk=2, pairs=(x, y))
    gap = float(np.mean(np.sum((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2, axis=1)))
    assert ident["l2_uvp_fwd"] == pytest.approx(100 * gap / 2.0, rel=1e-5)
    assert ident["l2_uvp_inv"] == pytest.approx(100 * gap / 3.0, rel=1e-5)
    assert ident["cos_fwd"] == 0.0 and ident["cos_inv"] == 0.0


# ---------------------------------------------------------------------------------------------------- files

def test_file_specs() -> None:
    assert len(celeba.GIT_BLOB) == 19 and len(set(celeba.GIT_BLOB.values())) == 19
    assert all(len(v) == 40 and int(v, 16) >= 0 for v in celeba.GIT_BLOB.values())
    assert celeba.stage_files("Mid") == ("Final_G.pt", "Mid_v1.pt", "Mid_v2.pt")
    assert set(celeba.BENCHMARK_FILES) <= set(celeba.FILES)
    assert 1.20e9 < celeba.download_size() < 1.23e9 and 3.6e8 < celeba.download_size(celeba.BENCHMARK_FILES) < 3.7e8
    with pytest.raises(ValueError, match="Early, Mid, Late"):
        celeba.stage_files("Final")
    with pytest.raises(ValueError, match="not an upstream CelebA64 benchmark file"):
        celeba.fetch("Early_v3.pt")


def test_fetch_refuses_mismatched_and_corrupted_files(fixtures: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(celeba.ENV_DIR, raising=False)
    os.symlink(fixtures / "convicnn64_v1.pt", tmp_path / "Early_v1.pt")  # the right format, not the upstream file
    with pytest.raises(ChecksumError, match=r"refusing Early_v1\.pt.*expected git blob 42db29a3.*download=True"):
        celeba.fetch("Early_v1.pt", data_dir=tmp_path)
    (tmp_path / "Final_G.pt").write_bytes((fixtures / "resnet_g.pt").read_bytes()[:1 << 20])  # truncated
    with pytest.raises(ChecksumError, match=r"Final_G\.pt"):
        celeba.fetch("Final_G.pt", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"Mid_v2\.pt \(about 45 MB\).*download=True"):
        celeba.fetch("Mid_v2.pt", data_dir=tmp_path)


def test_download_is_verified_before_it_is_kept(fixtures: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Downloads from a local file:// 'upstream' (no network): a mismatch leaves nothing behind; a file
    whose git blob id matches the pin is kept and found, verified, on the next call."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    upstream, dest = tmp_path / "upstream", tmp_path / "data"
    upstream.mkdir()
    shutil.copy(fixtures / "convicnn64_v1.pt", upstream / "Late_v2.pt")
    base = upstream.as_uri()
    with pytest.raises(ChecksumError, match=r"refusing Late_v2\.pt.*Nothing was saved"):
        celeba.fetch("Late_v2.pt", data_dir=dest, download=True, base_url=base)
    assert not dest.exists() or not any(dest.iterdir())
    monkeypatch.setitem(celeba.GIT_BLOB, "Late_v2.pt", git_blob_sha1(upstream / "Late_v2.pt"))
    path = celeba.fetch("Late_v2.pt", data_dir=dest, download=True, base_url=base)
    assert path == dest / "Late_v2.pt" and path.read_bytes() == (upstream / "Late_v2.pt").read_bytes()
    (upstream / "Late_v2.pt").unlink()
    assert celeba.fetch("Late_v2.pt", data_dir=dest) == path


# ---------------------------------------------------------------------------------------------------- pools

def test_sample_pool_and_evaluator(icnn_golden: dict) -> None:
    """A pool of four golden pairs: coupled and unpaired draws, and the driver's evaluator on its rows
    (T* as a row lookup scores 0 and cos 1; the identity scores ||X - Y||^2 / Var(Q) on the drawn rows)."""
    x = jnp.asarray(icnn_golden["x"][4:8].reshape(4, DIM))
    y = jnp.asarray(icnn_golden["T_star"][4:8].reshape(4, DIM), jnp.float32)
    pool = celeba.SamplePool(x, y, jnp.float32(3.0), jnp.float32(2.0))
    xs, ys = pool.sample_pair(jax.random.key(0), 16)
    rows = np.asarray(jax.random.randint(jax.random.key(0), (16,), 0, 4))
    np.testing.assert_array_equal(xs, x[rows])
    np.testing.assert_array_equal(ys, y[rows])
    assert not np.array_equal(pool.sample_source(jax.random.key(1), 16), pool.sample_target(jax.random.key(1), 16))

    def lookup(state, a):  # T* on the pool's rows, traceable
        nearest = jnp.argmin(jnp.sum((a[:, None, :] - x[None]) ** 2, axis=-1), axis=1)
        return y[nearest]

    key = jax.random.key(5)
    exact = jax.jit(celeba.evaluator(pool, lookup, n=6, chunk=4, figure=x[:2]))(None, key)
    assert float(exact["l2_uvp"]) == 0.0 and float(exact["cos"]) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(exact["figure"], y[:2])
    ident = jax.jit(celeba.evaluator(pool, lambda s, a: a, n=6, chunk=4))(None, key)
    drawn = [pool.sample_pair(jax.random.fold_in(key, i), m) for i, m in ((0, 4), (1, 2))]
    gap = sum(float(np.sum((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)) for a, b in drawn)
    assert float(ident["l2_uvp"]) == pytest.approx(100 * gap / 6 / 2.0, rel=1e-5)
    assert float(ident["cos"]) == 0.0
