"""The CelebA64 benchmark pairs "Early", "Mid", "Late" (Korotin et al. 2021, arXiv:2106.01954, §4).

Images are handled as the row-major flattening ``(n, 12288)`` of NCHW ``(n, 3, 64, 64)`` (what the
metrics and the solvers see; :func:`otlib.w2bench.conv_icnn64.as_images` reshapes back)::

    P:   x = G(z) + 0.01 eps,          z ~ N(0, I_128), eps ~ N(0, I_12288), G = ResNet_G(Final_G.pt)
    T*:  T*(x) = grad phi(x),          phi = (psi_1 + psi_2) / 2,  psi_k = ConvICNN64({stage}_v{k}.pt), sc 0.01
    Q:   T*#P                          (no standardisation; T* = (grad net_1 + grad net_2) / 2 + 0.01 x)

phi is 0.01-strongly convex, so T* is the unique quadratic-cost OT map from P to Q (Brenier). As in the
official code, Var(P) = (Monte-Carlo variance of G(z)) + 12288 * 0.01^2 and Var(Q) is the Monte-Carlo
variance of T*(X) on fresh X ~ P (2^14 draws each, sums of per-coordinate variances, ddof 0). The
forward metrics (P -> Q) are normalised by Var(Q), the inverse ones (Q -> P) by Var(P); both evaluate
on coupled pairs (X, T*(X)), so no inverse map is needed.

Files (19 upstream, about 1.2 GB in all; one stage needs ``Final_G.pt`` and ``{stage}_v{1,2}.pt``, about
186 MB, 366 MB for the three stages) are looked up in the ``data_dir`` argument, ``$OTLIB_CELEBA64_DIR``
and ``data/w2bench/CelebA64/``, and every file is checked against its upstream git blob id before use.
A missing file is downloaded only when asked (``download=True``), with a progress bar, into the first of
those folders, through :func:`otlib.core.files.download`.
"""

from __future__ import annotations

import json
import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from otlib.core import files as otio
from otlib.core.paths import data_dir as _repo_data_dir
from otlib.core.progress import progress_bar
from otlib.w2bench.conv_icnn64 import BENCHMARK_STRONG_CONVEXITY, DIM, ConvICNN64Params, _batch_jit, _grad_jit, \
    as_images, load_conv_icnn64_params
from otlib.w2bench.hd import CoupledPair
from otlib.w2bench.metrics import unexplained_variance
from otlib.w2bench.resnet_g import LATENT_DIM, ResNetGParams, _g_jit, load_resnet_g_params

__all__ = ["STAGES", "GIT_BLOB", "FILES", "BENCHMARK_FILES", "APPROX_BYTES", "DEFAULT_BASE_URL", "NOISE_STD",
           "VAR_N_SAMPLES", "EVAL_N", "EVAL_CHUNK", "CelebA64Benchmark", "celeba64", "from_params",
           "source_variance", "target_variance", "stage_files", "default_dir", "search_dirs", "locate",
           "verify_file", "fetch", "fetch_all", "download_size", "evaluation_pairs", "evaluate", "identity_scores",
           "as_images", "SamplePool", "sample_pool", "evaluator"]

STAGES: tuple[str, ...] = ("Early", "Mid", "Late")
"""The three pairs, by the training stage of the generator checkpoints that the potentials were fitted to."""

DEFAULT_BASE_URL = ("https://raw.githubusercontent.com/iamalexkorotin/Wasserstein2Benchmark/main/"
                    "benchmarks/CelebA64")
ENV_DIR = "OTLIB_CELEBA64_DIR"
ENV_BASE_URL = "OTLIB_CELEBA64_URL"

#: Upstream git blob ids (sha1 of b"blob <len>\0" + bytes) of ``benchmarks/CelebA64/`` at commit 647a1ac.
GIT_BLOB: dict[str, str] = {
    "Early_G_v1.pt": "2ad47b7a22521abab95b9590c90336a2ebca936c",
    "Early_G_v2.pt": "b7d5fdc1802a53a2c0edab3b6414895b343fb7ce",
    "Early_v1.pt": "42db29a3058007b322deb07d45ed22370543b113",
    "Early_v1_conj.pt": "c6a6b1d2adc487fe571d711a4d4e55031ba408d1",
    "Early_v2.pt": "41d7ef4445f0cea48c4199d7cfd3a7fb051e2e6e",
    "Early_v2_conj.pt": "4f1039f62c34ae7adfa533ed89e5f470d7787eb9",
    "Final_G.pt": "e0415d31e7a61c90feadd3bea2cf8597e21bae2f",
    "Late_G_v1.pt": "c55416b1109f287ac9a75f0c1da70f5aedea9a3a",
    "Late_G_v2.pt": "2cfb9e90c5852435a7c068c8a68ca58792e63d63",
    "Late_v1.pt": "ba99c93a75b85beeefdf4f92e8f4127af2eef393",
    "Late_v1_conj.pt": "8b5d2a6ecd55f1b77a1fcdb6172ae3477f5c0c91",
    "Late_v2.pt": "474f622e5dfa619757aa0e9cb7e7f6f1c6bf07db",
    "Late_v2_conj.pt": "34c5f37d79059fa45b8b175bec7d6b4f2cc52c47",
    "Mid_G_v1.pt": "7792babbc67933b12eb7508ff841531f928211ee",
    "Mid_G_v2.pt": "620c0511c99246fc525b126eacbaba02840bab5d",
    "Mid_v1.pt": "6da1cc7363d1480c4a0d86934a53ea866cb297ef",
    "Mid_v1_conj.pt": "a463acde059631c6490f80baef28a6e232d81320",
    "Mid_v2.pt": "b407a5797f0dd8ae8e2561dab59c41f19cb78823",
    "Mid_v2_conj.pt": "9e43c317490c2113e4de02aaedc18ed16a1925c0",
}
FILES: tuple[str, ...] = tuple(GIT_BLOB)

#: Expected sizes from the architectures (data plus a few KB of container): ConvICNN64 and ResNet_G files.
APPROX_BYTES = {"potential": 44_993_000, "generator": 96_181_000}

NOISE_STD = 0.01
VAR_N_SAMPLES = 2 ** 14
"""Draws for the Monte-Carlo Var(P) and Var(Q), as in the official code."""
EVAL_N = 4096
EVAL_CHUNK = 256
"""The evaluation size and batch of the CelebA metrics in Amos 2023 (arXiv:2210.12153)'s benchmark code."""


def _check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"no CelebA64 benchmark pair {stage!r}; the pairs are {', '.join(STAGES)}")
    return stage


def stage_files(stage: str) -> tuple[str, str, str]:
    """The files one pair needs: ``Final_G.pt``, ``{stage}_v1.pt``, ``{stage}_v2.pt``."""
    _check_stage(stage)
    return "Final_G.pt", f"{stage}_v1.pt", f"{stage}_v2.pt"


BENCHMARK_FILES: tuple[str, ...] = ("Final_G.pt",) + tuple(f"{s}_v{k}.pt" for s in STAGES for k in (1, 2))
"""The 7 files the three pairs need (the ``_conj`` and ``*_G_v*`` files only serve re-training)."""


def _approx_size(name: str) -> int:
    return APPROX_BYTES["generator" if "G" in name.split("_") or name.startswith("Final_G") else "potential"]


def download_size(names: Iterable[str] = FILES) -> int:
    """Approximate bytes of ``names`` (all 19 files: about 1.21 GB; :data:`BENCHMARK_FILES`: 366 MB)."""
    return sum(_approx_size(n) for n in names)


def default_dir() -> Path:
    """``data/w2bench/CelebA64/`` under the repository root: the download cache (git-ignored)."""
    return _repo_data_dir("w2bench", "CelebA64")


def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched, in order: ``data_dir``, ``$OTLIB_CELEBA64_DIR``, ``data/w2bench/CelebA64/``."""
    dirs = [Path(data_dir)] if data_dir is not None else []
    if os.environ.get(ENV_DIR):
        dirs.append(Path(os.environ[ENV_DIR]))
    return dirs + [default_dir()]


def _check_name(name: str) -> str:
    if name not in GIT_BLOB:
        raise ValueError(f"{name!r} is not an upstream CelebA64 benchmark file; they are {', '.join(FILES)}")
    return name


def locate(name: str, data_dir: str | os.PathLike | None = None) -> Optional[Path]:
    """The first existing ``<dir>/<name>`` over :func:`search_dirs`, or None (no hash check)."""
    _check_name(name)
    return next((d / name for d in search_dirs(data_dir) if (d / name).is_file()), None)


def verify_file(path: str | os.PathLike) -> Path:
    """Check ``path`` against the git blob id pinned for its file name; raise ChecksumError on mismatch."""
    path = Path(path)
    try:
        otio.verify(path, git_blob=GIT_BLOB[_check_name(path.name)])
    except otio.ChecksumError as e:
        raise otio.ChecksumError(
            f"refusing {path.name}: {e} To replace it, delete {path} and call "
            f"otlib.w2bench.celeba.fetch({path.name!r}, download=True).") from None
    return path


def fetch(name: str, *, data_dir: str | os.PathLike | None = None, download: bool = False,
          base_url: Optional[str] = None, progress: bool = True) -> Path:
    """A verified local path to the upstream file ``name``, downloaded only if ``download=True``.

    A local copy is verified by its git blob id (a mismatch raises ChecksumError). A missing file
    raises FileNotFoundError unless ``download``; the download goes to the first of
    :func:`search_dirs` (URL base: ``base_url``, ``$OTLIB_CELEBA64_URL`` or upstream), is checked before
    it is renamed into place, and leaves nothing behind on a mismatch.
    """
    found = locate(name, data_dir)
    if found is not None:
        return verify_file(found)
    where = ", ".join(str(d) for d in search_dirs(data_dir))
    base = (base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL).rstrip("/")
    url = f"{base}/{name}"
    size = f"about {_approx_size(name) / 1e6:.0f} MB"
    if not download:
        raise FileNotFoundError(
            f"{name} ({size}) is not in any of [{where}]. Download it (verified by its git blob id) with "
            f"otlib.w2bench.celeba.fetch({name!r}, download=True), or put the upstream file from {url} in one "
            f"of those folders.")
    dest = search_dirs(data_dir)[0] / name
    try:
        return otio.download(url, dest, git_blob=GIT_BLOB[name], progress=progress)
    except otio.ChecksumError as e:
        raise otio.ChecksumError(f"refusing {name}: {e}") from None
    except (urllib.error.URLError, OSError) as e:
        raise FileNotFoundError(f"downloading {name} ({size}) from {url} failed ({e}); retry with network "
                                f"access, or put the upstream file in one of [{where}]") from e


def fetch_all(names: Iterable[str] = BENCHMARK_FILES, **kwargs: Any) -> list[Path]:
    """:func:`fetch` each of ``names`` (default: the 7 files of the three pairs; :data:`FILES`: all 19)."""
    return [fetch(n, **kwargs) for n in names]


# ----------------------------------------------------------------------------------------------------
# The pair: pure, chunked kernels (a chunk bounds the memory of the conv nets at any n).

def _chunked(fn: Callable[[jax.Array], jax.Array], x: jax.Array, chunk: int) -> jax.Array:
    """fn over the rows of x in chunks of ``chunk`` (a ``lax.map`` loop; one call if n <= chunk)."""
    n = x.shape[0]
    if n <= chunk:
        return fn(x)
    k, r = divmod(n, chunk)
    head = jax.lax.map(fn, x[:k * chunk].reshape(k, chunk, *x.shape[1:]))
    out = head.reshape(k * chunk, *head.shape[2:])
    return jnp.concatenate([out, fn(x[k * chunk:])]) if r else out


def _generate(generator: ResNetGParams, z: jax.Array, chunk: int) -> jax.Array:
    """G(z) flattened, (n, 12288)."""
    return _chunked(lambda z: _g_jit(generator, z).reshape(z.shape[0], DIM), z, chunk)


def _transport(p1: ConvICNN64Params, p2: ConvICNN64Params, x: jax.Array, chunk: int) -> jax.Array:
    sc = BENCHMARK_STRONG_CONVEXITY
    return _chunked(lambda x: 0.5 * (_grad_jit(p1, x, sc) + _grad_jit(p2, x, sc)), x, chunk)


@dataclass(frozen=True, eq=False)
class CelebA64Benchmark(CoupledPair):
    """One CelebA64 pair, a JAX pytree (``stage``, ``chunk``, ``noise_std`` static), so it can be passed
    into jitted functions; every method is traceable and works on flattened images (n, 12288).

    Attributes: ``generator`` (ResNet_G parameters of P), ``params_1``, ``params_2`` (the two ConvICNN64
    potentials), ``var_source`` = Var(P), ``var_target`` = Var(Q) (Monte-Carlo, module doc), ``chunk``
    (rows per pass through a conv net).
    """

    stage: str
    generator: ResNetGParams
    params_1: ConvICNN64Params
    params_2: ConvICNN64Params
    var_source: jax.Array
    var_target: jax.Array
    chunk: int = 64
    noise_std: float = NOISE_STD

    @property
    def dim(self) -> int:
        """12288 = 3 * 64 * 64."""
        return DIM

    def source_from_latents(self, z: jax.Array, eps: jax.Array) -> jax.Array:
        """x = G(z) + noise_std * eps, flattened: the official input sampler's composition."""
        return _generate(self.generator, z, self.chunk) + self.noise_std * eps.reshape(z.shape[0], DIM)

    def sample_source(self, key: jax.Array, n: int) -> jax.Array:
        """n fresh samples of P, (n, 12288) float32 (z from ``split(key)[0]``, eps from ``split(key)[1]``)."""
        kz, ke = jax.random.split(key)
        return self.source_from_latents(jax.random.normal(kz, (n, LATENT_DIM)), jax.random.normal(ke, (n, DIM)))

    def transport(self, x: jax.Array) -> jax.Array:
        """The ground-truth OT map T*(x) = (grad psi_1 + grad psi_2)(x) / 2, (n, 12288) -> (n, 12288)."""
        return _transport(self.params_1, self.params_2, jnp.asarray(x), self.chunk)

    def potential(self, x: jax.Array) -> jax.Array:
        """The Brenier potential phi = (psi_1 + psi_2) / 2 with grad phi = T*, (n, 12288) -> (n,)."""
        x = jnp.asarray(x)
        sc = BENCHMARK_STRONG_CONVEXITY
        return _chunked(lambda x: 0.5 * (_batch_jit(self.params_1, x, sc) + _batch_jit(self.params_2, x, sc)),
                        x, self.chunk)


jax.tree_util.register_dataclass(
    CelebA64Benchmark, data_fields=["generator", "params_1", "params_2", "var_source", "var_target"],
    meta_fields=["stage", "chunk", "noise_std"])


def _variance(chunks: Iterable[jax.Array]) -> float:
    """Sum over coordinates of the per-coordinate variance (ddof 0), float64 sums over chunks."""
    s1 = s2 = 0.0
    n = 0
    for c in chunks:
        c = np.asarray(c, np.float64)
        s1, s2, n = s1 + c.sum(0), s2 + (c * c).sum(0), n + len(c)
    mean = s1 / n
    return float(np.maximum(s2 / n - mean ** 2, 0.0).sum())


def source_variance(generator: ResNetGParams, z: jax.Array, *, noise_std: float = NOISE_STD,
                    chunk: int = 64) -> float:
    """Var(P) as the official input sampler computes it: sum_d Var(G(z)_d) over the latents ``z`` plus the
    noise's 12288 * noise_std^2."""
    z = jnp.asarray(z)
    return (_variance(_generate(generator, z[s:s + chunk], chunk) for s in range(0, z.shape[0], chunk))
            + DIM * noise_std ** 2)


def target_variance(params_1: ConvICNN64Params, params_2: ConvICNN64Params, x: jax.Array, *,
                    chunk: int = 64) -> float:
    """Var(Q): sum_d Var(T*(x)_d) over the samples ``x`` of P."""
    return _variance(_transport(params_1, params_2, x[s:s + chunk], chunk) for s in range(0, x.shape[0], chunk))


def from_params(generator: ResNetGParams, params_1: ConvICNN64Params, params_2: ConvICNN64Params, *,
                key: jax.Array, n_var: int = VAR_N_SAMPLES, stage: str = "custom", chunk: int = 64,
                progress: bool = True) -> CelebA64Benchmark:
    """A pair from parameters, with Var(P) from ``n_var`` latents and Var(Q) from ``n_var`` fresh X ~ P.

    ``split(key)`` gives the key of the latents of Var(P) and the key of the X of Var(Q) (chunk i of
    X: ``fold_in(key_q, i)``); the official code also draws each on fresh samples. ``n_var=0`` estimates
    nothing (both variances NaN): for a pair only used through a :func:`sample_pool`.
    """
    key_p, key_q = jax.random.split(key)
    bench = CelebA64Benchmark(stage=stage, generator=generator, params_1=params_1, params_2=params_2,
                              var_source=jnp.float32(jnp.nan), var_target=jnp.float32(jnp.nan), chunk=chunk)
    if n_var == 0:
        return bench
    starts = range(0, n_var, chunk)
    with progress_bar(total=2 * len(starts), desc=f"CelebA64 {stage}: Var(P), Var(Q)", disable=not progress) as bar:
        z = jax.random.normal(key_p, (n_var, LATENT_DIM))

        def images():
            for s in starts:
                yield _generate(generator, z[s:s + chunk], chunk)
                bar.update()

        def targets():
            for i, s in enumerate(starts):
                yield bench.sample_target(jax.random.fold_in(key_q, i), min(chunk, n_var - s))
                bar.update()

        var_p = _variance(images()) + DIM * bench.noise_std ** 2
        var_q = _variance(targets())
    return CelebA64Benchmark(stage=stage, generator=generator, params_1=params_1, params_2=params_2,
                             var_source=jnp.float32(var_p), var_target=jnp.float32(var_q), chunk=chunk)


VAR_SEED = 0
"""The variances of the real pairs are estimated under ``jax.random.key(VAR_SEED)``."""


def _cache_path() -> Path:
    return default_dir() / "variances.json"


_CACHE: dict[tuple[str, str, int], CelebA64Benchmark] = {}


def celeba64(stage: str, *, data_dir: str | os.PathLike | None = None, download: bool = False,
             base_url: Optional[str] = None, n_var: int = VAR_N_SAMPLES, chunk: int = 64,
             progress: bool = True) -> CelebA64Benchmark:
    """The CelebA64 pair ``stage`` (Early, Mid or Late) from the verified upstream files.

    Files: :func:`fetch` (``download=True`` fetches missing ones, about 96 MB + 2 x 45 MB per pair).
    Var(P), Var(Q) (2^14 draws each, under ``key(VAR_SEED)``; about 200 TFLOP, so a GPU) are estimated
    on first use and cached in ``data/w2bench/CelebA64/variances.json`` by the files' git blob ids.
    """
    names = stage_files(stage)
    paths = [fetch(n, data_dir=data_dir, download=download, base_url=base_url, progress=progress) for n in names]
    cache_key = (stage, str(paths[0].parent.resolve()), n_var)
    if cache_key in _CACHE:
        return _CACHE[cache_key]
    generator = load_resnet_g_params(paths[0])
    p1, p2 = load_conv_icnn64_params(paths[1]), load_conv_icnn64_params(paths[2])
    entry_key = f"{stage}:{n_var}:{VAR_SEED}:" + ":".join(GIT_BLOB[n] for n in names)
    path = _cache_path()
    stored = json.loads(path.read_text()) if path.is_file() else {}
    if entry_key in stored:
        bench = CelebA64Benchmark(stage=stage, generator=generator, params_1=p1, params_2=p2,
                                  var_source=jnp.float32(stored[entry_key]["var_source"]),
                                  var_target=jnp.float32(stored[entry_key]["var_target"]), chunk=chunk)
    else:
        bench = from_params(generator, p1, p2, key=jax.random.key(VAR_SEED), n_var=n_var, stage=stage,
                            chunk=chunk, progress=progress)
        stored[entry_key] = {"var_source": float(bench.var_source), "var_target": float(bench.var_target)}
        otio.atomic_write_text(path, json.dumps(stored, indent=1) + "\n")
    _CACHE[cache_key] = bench
    return bench


# ----------------------------------------------------------------------------------------------------
# Metrics (the functions of otlib.w2bench.metrics, evaluated in batches of EVAL_CHUNK).

MapFn = Callable[[jax.Array], jax.Array]


def _apply(fn: MapFn, x: jax.Array, chunk: int) -> jax.Array:
    out = jnp.concatenate([jnp.asarray(fn(x[s:s + chunk])) for s in range(0, x.shape[0], chunk)])
    if out.shape != x.shape:
        raise ValueError(f"a map must take and return flattened images (n, {DIM}); got {tuple(x.shape)} -> "
                         f"{tuple(out.shape)}")
    return out


def _cos(pred: jax.Array, x: jax.Array, y: jax.Array) -> float:
    """cos(T - id, T* - id) over the rows, every term on this batch; 0 for the identity (as
    :func:`otlib.w2bench.metrics.cos_similarity`)."""
    d_hat, d_star = np.asarray(pred - x, np.float64), np.asarray(y - x, np.float64)
    norm_hat = float(np.sum(d_hat ** 2))
    return 0.0 if norm_hat == 0.0 else float(np.sum(d_hat * d_star) / np.sqrt(norm_hat * np.sum(d_star ** 2)))


def evaluation_pairs(bench: CelebA64Benchmark, key: jax.Array, n: int = EVAL_N, *,
                     chunk: int = EVAL_CHUNK) -> tuple[jax.Array, jax.Array]:
    """n coupled pairs (X, T*(X)), X ~ P (chunk i of ``chunk`` rows drawn under ``fold_in(key, i)``)."""
    parts = [bench.sample_pair(jax.random.fold_in(key, i), min(chunk, n - s)) for i, s in enumerate(range(0, n, chunk))]
    return jnp.concatenate([p[0] for p in parts]), jnp.concatenate([p[1] for p in parts])


def evaluate(bench: CelebA64Benchmark, key: jax.Array, map_fn: Optional[MapFn] = None,
             inv_map_fn: Optional[MapFn] = None, *, n: int = EVAL_N, chunk: int = EVAL_CHUNK,
             pairs: Optional[tuple[jax.Array, jax.Array]] = None) -> dict[str, float]:
    """L2-UVP % and cos of a forward map (P -> Q) and/or an inverse map (Q -> P) on ``n`` pairs.

    Keys ``l2_uvp_fwd``, ``cos_fwd`` (if ``map_fn``) and ``l2_uvp_inv``, ``cos_inv`` (if ``inv_map_fn``):
    100 mean ||T(X) - Y||^2 / Var(Q) (:func:`otlib.w2bench.metrics.unexplained_variance`) and
    cos(T - id, T* - id) in L2(P), and the same for S on Y against X, normalised by Var(P). Both
    directions score the same pairs (X, Y = T*(X)): ``pairs`` if given, else :func:`evaluation_pairs`
    under ``key``. The maps take and return flattened images and are called on ``chunk`` rows at a time.
    """
    x, y = evaluation_pairs(bench, key, n, chunk=chunk) if pairs is None else pairs
    out: dict[str, float] = {}
    for name, fn, src, dst, var in (("fwd", map_fn, x, y, bench.var_target),
                                    ("inv", inv_map_fn, y, x, bench.var_source)):
        if fn is not None:
            pred = _apply(fn, src, chunk)
            out[f"l2_uvp_{name}"] = float(unexplained_variance(pred, dst, var))
            out[f"cos_{name}"] = _cos(pred, src, dst)
    return out


def identity_scores(bench: CelebA64Benchmark, key: jax.Array, *, n: int = EVAL_N, chunk: int = EVAL_CHUNK,
                    pairs: Optional[tuple[jax.Array, jax.Array]] = None) -> dict[str, float]:
    """The identity baseline both ways (its cos is 0 by convention, as in the official code)."""
    return evaluate(bench, key, lambda x: x, lambda y: y, n=n, chunk=chunk, pairs=pairs)


# ----------------------------------------------------------------------------------------------------
# A fixed sample of a pair (quick CPU runs), and the driver's evaluation.

@dataclass(frozen=True, eq=False)
class SamplePool:
    """A fixed sample of a pair: coupled rows ``x`` of P and ``y = T*(x)``, a JAX pytree.

    It has the pair's sampler interface, drawing rows with replacement: ``sample_source`` and
    ``sample_target`` draw independent rows (unpaired batches, as fresh draws would be), ``sample_pair``
    one set of rows of both (coupled). A fresh draw costs a pass through G and both ConvICNN64 per
    sample; a pool pays it once, so a solver can take a few steps on a CPU. What it learns is the map on
    the pool's empirical measure, not on P.
    """

    x: jax.Array
    y: jax.Array
    var_source: jax.Array
    var_target: jax.Array

    @property
    def dim(self) -> int:
        return DIM

    def _rows(self, key: jax.Array, n: int) -> jax.Array:
        return jax.random.randint(key, (n,), 0, self.x.shape[0])

    def sample_source(self, key: jax.Array, n: int) -> jax.Array:
        return self.x[self._rows(key, n)]

    def sample_target(self, key: jax.Array, n: int) -> jax.Array:
        return self.y[self._rows(key, n)]

    def sample_pair(self, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
        rows = self._rows(key, n)
        return self.x[rows], self.y[rows]


jax.tree_util.register_dataclass(SamplePool, data_fields=["x", "y", "var_source", "var_target"], meta_fields=[])


def sample_pool(bench: CelebA64Benchmark, key: jax.Array, n: int, *, chunk: int = EVAL_CHUNK) -> SamplePool:
    """A :class:`SamplePool` of ``n`` pairs (X, T*(X)) of ``bench`` (:func:`evaluation_pairs` under ``key``).

    Its ``var_source`` and ``var_target`` are the variances of the pool's own rows (sums of per-coordinate
    variances, ddof 0): the normalisers of the measures it stands for.
    """
    x, y = evaluation_pairs(bench, key, n, chunk=chunk)
    return SamplePool(x, y, jnp.float32(_variance([x])), jnp.float32(_variance([y])))


def evaluator(pairs: CelebA64Benchmark | SamplePool, transport: Callable[[Any, jax.Array], jax.Array], *,
              n: int = EVAL_N, chunk: int = EVAL_CHUNK,
              figure: Optional[jax.Array] = None) -> Callable[[Any, jax.Array], dict[str, jax.Array]]:
    """The driver's ``evaluate(state, key)`` for a method's forward map on a CelebA64 pair (traceable, so the
    driver jits it and vmaps it over seeds): ``l2_uvp`` = 100 mean ||T(X) - T*(X)||^2 / Var(Q) and ``cos``
    (as in :func:`evaluate`) of ``T(x) = transport(state, x)`` on ``n`` pairs (X, T*(X)), drawn in
    chunks of ``chunk`` rows (chunk i under ``fold_in(key, i)``: on a pair a fresh draw through G and T*, on
    a :class:`SamplePool` its rows), so memory stays bounded. ``figure`` (k, 12288): also return the map's
    images of those inputs as ``figure``, for a figure of the trained map.
    """
    sizes = [min(chunk, n - s) for s in range(0, n, chunk)]

    def sums(state: Any, key: jax.Array, rows: int) -> jax.Array:
        x, y = pairs.sample_pair(key, rows)
        d_hat, d_star = transport(state, x) - x, y - x
        return jnp.stack([jnp.sum((d_hat - d_star) ** 2), jnp.sum(d_hat * d_star), jnp.sum(d_hat ** 2),
                          jnp.sum(d_star ** 2)])

    def evaluate(state: Any, key: jax.Array) -> dict[str, jax.Array]:
        full = len(sizes) - (sizes[-1] != chunk)
        total = jnp.zeros(4)
        if full:
            total = jnp.sum(jax.lax.map(lambda i: sums(state, jax.random.fold_in(key, i), chunk), jnp.arange(full)), 0)
        if full < len(sizes):
            total = total + sums(state, jax.random.fold_in(key, full), sizes[-1])
        err, inner, norm_hat, norm_star = total
        cos = jnp.where(norm_hat > 0, inner / jnp.sqrt(norm_hat * norm_star), 0.0)
        out = {"l2_uvp": 100.0 * err / n / pairs.var_target, "cos": cos}
        if figure is not None:
            out["figure"] = transport(state, figure)
        return out

    return evaluate
