"""The HD benchmark pair (P, Q = T*#P), "Mix3toMix10", D in {2, ..., 256}.

Korotin et al. 2021, arXiv:2106.01954; ``Mix3ToMix10Benchmark`` in the official ``src/map_benchmark.py``.
T*(x) = s (grad psi_1(x) + grad psi_2(x) - m) is the gradient of the convex potential
phi(x) = s (psi_1 + psi_2)(x) - s <m, x>, so it is the unique quadratic-cost OT map from P.

The standardisation constants m (vector), s (scalar) are Monte-Carlo estimates in the official code
(``standardize_potential`` in ``src/potentials.py``: 2^14 draws of a torch CUDA stream, not reproducible).
Here they are estimated once from 2^20 draws under a fixed ``jax.random.key`` (:func:`estimate_constants`) and
stored in ``data/w2bench_hd_constants.json`` (``python -m otlib.w2bench constants``). They differ from the
official run only at Monte-Carlo level (<= 0.011% L2-UVP). ``var_target`` = Var(Q) is estimated the same way
on an independent 2^20-draw sample (fresh key), as the official code estimates it on fresh samples. For a D
missing from that file (D = 256, whose checkpoints are download-only), the constants are estimated on first
use with the same recipe and cached in ``data/w2bench/``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from otlib.core.files import atomic_write_text, sha256_file
from otlib.core.paths import data_dir as _repo_data_dir
from otlib.core.progress import progress_bar
from otlib.w2bench import files
from otlib.w2bench.dense_icnn import DenseICNNParams, dense_icnn_batch, dense_icnn_grad, \
    load_dense_icnn_params
from otlib.w2bench.mix3 import mix3_covariance, mix3_params, sample_mix3

__all__ = ["HDBenchmark", "hd", "estimate_constants", "constants_path", "cache_constants_path",
           "read_constants", "write_constants",
           "CONSTANTS_N_SAMPLES", "CONSTANTS_CHUNK", "CONSTANTS_SEED", "VAR_TARGET_SEED"]

CONSTANTS_N_SAMPLES = 2 ** 20
"""Draws used for m, s and (independently) for Var(Q)."""
CONSTANTS_CHUNK = 2 ** 14
CONSTANTS_SEED = 0
"""m, s: chunk i of X ~ P is drawn with ``fold_in(jax.random.key(CONSTANTS_SEED), i)``."""
VAR_TARGET_SEED = 1
"""Var(Q): the same recipe with ``jax.random.key(VAR_TARGET_SEED)`` (a sample independent of m, s)."""

_NOTE = ("Standardisation constants of the Korotin et al. (2021) W2 benchmark HD pairs (Mix3toMix10): "
         "T*(x) = scale * (grad psi_1(x) + grad psi_2(x) - shift). The official code estimates them by Monte "
         "Carlo on 2^14 torch-CUDA draws that cannot be reproduced; these are estimates from n_samples draws "
         "of X ~ Mix3 under a fixed JAX key and differ from the official run only at Monte-Carlo level "
         "(<= 0.011% L2-UVP). var_target = Var(Q) is estimated on an independent sample (var_target_key).")


def constants_path() -> Path:
    """The committed constants file ``data/w2bench_hd_constants.json``."""
    return _repo_data_dir("w2bench_hd_constants.json")


def cache_constants_path() -> Path:
    """Constants estimated on first use for D missing from the committed file (not committed)."""
    return files.default_dir() / "hd_constants.json"


# ----------------------------------------------------------------------------------------------------
# Pure, jitted kernels (the benchmark's arrays are arguments, so one compilation serves every instance).

def _sum_grads(p1: DenseICNNParams, p2: DenseICNNParams, x: jax.Array) -> jax.Array:
    return dense_icnn_grad(p1, x) + dense_icnn_grad(p2, x)


@jax.jit
def _transport(p1: DenseICNNParams, p2: DenseICNNParams, shift: jax.Array, scale: jax.Array,
               x: jax.Array) -> jax.Array:
    """T*(x) = s (grad psi_1 + grad psi_2 - m) on a batch (n, D)."""
    return scale * (_sum_grads(p1, p2, x) - shift)


@jax.jit
def _potential(p1: DenseICNNParams, p2: DenseICNNParams, shift: jax.Array, scale: jax.Array,
               x: jax.Array) -> jax.Array:
    """phi(x) = s (psi_1 + psi_2)(x) - s <m, x> on a batch (n, D) -> (n,)."""
    return scale * (dense_icnn_batch(p1, x) + dense_icnn_batch(p2, x) - x @ shift)


_sample = jax.jit(sample_mix3, static_argnums=1)


@jax.jit
def _chunk_stats(p1: DenseICNNParams, p2: DenseICNNParams, centres: jax.Array, maps: jax.Array,
                 key: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = sample_mix3(key, CONSTANTS_CHUNK, centres, maps)
    y = _sum_grads(p1, p2, x)
    return y.sum(axis=0), (y * y).sum(axis=0)


# ----------------------------------------------------------------------------------------------------

class CoupledPair:
    """What every benchmark pair (HD and CelebA64) derives from its ``sample_source`` and ``transport``."""

    def sample_pair(self, key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
        """(X, T*(X)) with X ~ P: a coupled pair, Y ~ Q (the pairs every metric scores)."""
        x = self.sample_source(key, n)
        return x, self.transport(x)

    def sample_target(self, key: jax.Array, n: int) -> jax.Array:
        """n fresh samples of Q = T*#P (T* applied to fresh X ~ P)."""
        return self.sample_pair(key, n)[1]


@dataclass(frozen=True, eq=False)
class HDBenchmark(CoupledPair):
    """One HD pair. A JAX pytree (``dim`` static), so it can be passed into jitted functions.

    Attributes: ``centres`` (3, D), ``maps`` (3, D, D) of P; ``params_1``, ``params_2`` the two
    DenseICNN potentials (sc = 1e-2); ``shift`` m (D,), ``scale`` s, ``var_target`` Var(Q);
    ``source_cov`` the analytic covariance of P (its mean is 0 and its trace D).
    """

    dim: int
    centres: jax.Array
    maps: jax.Array
    params_1: DenseICNNParams
    params_2: DenseICNNParams
    shift: jax.Array
    scale: jax.Array
    var_target: jax.Array
    source_cov: jax.Array

    @property
    def var_source(self) -> float:
        """Var(P) = E||x - Ex||^2 = D exactly (every coordinate has unit variance)."""
        return float(self.dim)

    @property
    def source_mean(self) -> jax.Array:
        """E[P] = 0 exactly."""
        return jnp.zeros(self.dim, jnp.float32)

    def sample_source(self, key: jax.Array, n: int) -> jax.Array:
        """n fresh samples of P = Mix3, (n, D) float32."""
        return _sample(key, n, self.centres, self.maps)

    def transport(self, x: jax.Array) -> jax.Array:
        """The ground-truth OT map T*(x) = s (grad psi_1 + grad psi_2 - m), (n, D) -> (n, D)."""
        return _transport(self.params_1, self.params_2, self.shift, self.scale, jnp.asarray(x))

    def potential(self, x: jax.Array) -> jax.Array:
        """The convex Brenier potential phi with grad phi = T*, (n, D) -> (n,)."""
        return _potential(self.params_1, self.params_2, self.shift, self.scale, jnp.asarray(x))


jax.tree_util.register_dataclass(
    HDBenchmark,
    data_fields=["centres", "maps", "params_1", "params_2", "shift", "scale", "var_target", "source_cov"],
    meta_fields=["dim"])


# ----------------------------------------------------------------------------------------------------
# Constants: estimation (the recipe), storage and lookup.

def _moments(p1: DenseICNNParams, p2: DenseICNNParams, centres: jax.Array, maps: jax.Array, seed: int,
             n_samples: int, desc: str, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean and per-coordinate variance (ddof 0) of S(X) = grad psi_1 + grad psi_2, X ~ P (float64 sums)."""
    if n_samples % CONSTANTS_CHUNK:
        raise ValueError(f"n_samples must be a multiple of {CONSTANTS_CHUNK}, got {n_samples}")
    key = jax.random.key(seed)
    total = np.zeros(centres.shape[1]), np.zeros(centres.shape[1])
    n_chunks = n_samples // CONSTANTS_CHUNK
    with progress_bar(total=n_chunks, desc=desc, disable=not progress) as bar:
        for i in range(n_chunks):
            s1, s2 = _chunk_stats(p1, p2, centres, maps, jax.random.fold_in(key, i))
            total = total[0] + np.asarray(s1, np.float64), total[1] + np.asarray(s2, np.float64)
            bar.update(1)
    mean = total[0] / n_samples
    return mean, np.maximum(total[1] / n_samples - mean ** 2, 0.0)


def estimate_constants(dim: int, params_1: DenseICNNParams, params_2: DenseICNNParams, *,
                       n_samples: int = CONSTANTS_N_SAMPLES, progress: bool = True) -> dict[str, Any]:
    """The official standardisation recipe (``standardize_potential``) with a large fixed-key sample.

    m = E[S(X)], mean_var = mean_d Var(S_d), s = 1/sqrt(mean_var) from X drawn under
    ``key(CONSTANTS_SEED)``; var_target = s^2 sum_d Var(S_d) on an independent sample under
    ``key(VAR_TARGET_SEED)`` (= Var(Q), since T* is affine in S). Chunks of 2^14 bound the memory.
    """
    centres, maps = (jnp.asarray(a) for a in mix3_params(dim))
    shift, var = _moments(params_1, params_2, centres, maps, CONSTANTS_SEED, n_samples,
                          f"w2bench D={dim}: m, s", progress)
    mean_var = float(var.mean())
    scale = 1.0 / np.sqrt(mean_var)
    _, var2 = _moments(params_1, params_2, centres, maps, VAR_TARGET_SEED, n_samples,
                       f"w2bench D={dim}: Var(Q)", progress)
    return {"shift": [float(v) for v in shift], "scale": float(scale), "mean_var": mean_var,
            "var_target": float(scale ** 2 * var2.sum()), "n_samples": int(n_samples)}


def _recipe(n_samples: int) -> dict[str, Any]:
    return {"note": _NOTE, "n_samples": n_samples, "chunk": CONSTANTS_CHUNK,
            "key": f"jax.random.key({CONSTANTS_SEED}); chunk i: jax.random.fold_in(key, i)",
            "var_target_key": f"jax.random.key({VAR_TARGET_SEED}); chunk i: jax.random.fold_in(key, i)",
            "prng_impl": str(jax.config.jax_default_prng_impl), "jax_version": jax.__version__,
            "dims": {}}


def read_constants(path: Path) -> dict[str, Any]:
    """The ``dims`` table of a constants file ({} if the file is absent)."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())["dims"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a valid constants file ({e}); delete it and run "
                         f"`python -m otlib.w2bench constants` to regenerate it") from e


def write_constants(path: Path, entries: dict[int, dict[str, Any]], *,
                    n_samples: int = CONSTANTS_N_SAMPLES) -> None:
    """Merge ``entries`` (by D) into the constants file at ``path``, atomically."""
    doc = _recipe(n_samples)
    if path.is_file():
        doc["dims"] = read_constants(path)
    doc["dims"].update({str(d): e for d, e in entries.items()})
    doc["dims"] = dict(sorted(doc["dims"].items(), key=lambda kv: int(kv[0])))
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    os.chmod(path, 0o644)  # mkstemp creates 0600; the file is meant to be shared and committed


def _constants_for(dim: int, path_1: Path, path_2: Path, p1: DenseICNNParams,
                   p2: DenseICNNParams) -> dict[str, Any]:
    for path in (constants_path(), cache_constants_path()):
        entry = read_constants(path).get(str(dim))
        if entry is not None:
            return entry
    print(f"otlib.w2bench: no stored standardisation constants for D={dim}; estimating them once from "
          f"{CONSTANTS_N_SAMPLES} draws (fixed key) and caching them in {cache_constants_path()}",
          file=sys.stderr)
    entry = estimate_constants(dim, p1, p2)
    entry.update(sha256_v1=sha256_file(path_1), sha256_v2=sha256_file(path_2))
    write_constants(cache_constants_path(), {dim: entry})
    return entry


_CACHE: dict[tuple[int, str], HDBenchmark] = {}


def hd(dim: int, *, data_dir: str | os.PathLike | None = None, base_url: str | None = None) -> HDBenchmark:
    """The HD benchmark pair at dimension ``dim`` (cached per (dim, resolved folder)).

    Files are found or downloaded and checksummed by :mod:`otlib.w2bench.files` (lookup order:
    ``data_dir``, ``$OTLIB_DATA_DIR``, ``data/w2bench/``, then download).
    """
    files.check_dim(dim)
    found = files.locate(files.file_name(dim, 1), data_dir)
    folder = str((found.parent if found is not None else files.default_dir()).resolve())
    if (dim, folder) in _CACHE:
        return _CACHE[(dim, folder)]
    path_1 = files.fetch(dim, 1, data_dir=data_dir, base_url=base_url)
    path_2 = files.fetch(dim, 2, data_dir=data_dir, base_url=base_url)
    p1, p2 = load_dense_icnn_params(path_1), load_dense_icnn_params(path_2)
    const = _constants_for(dim, path_1, path_2, p1, p2)
    centres, maps = mix3_params(dim)
    bench = HDBenchmark(
        dim=dim, centres=jnp.asarray(centres), maps=jnp.asarray(maps), params_1=p1, params_2=p2,
        shift=jnp.asarray(const["shift"], jnp.float32), scale=jnp.asarray(const["scale"], jnp.float32),
        var_target=jnp.asarray(const["var_target"], jnp.float32),
        source_cov=jnp.asarray(mix3_covariance(centres, maps), jnp.float32))
    _CACHE[(dim, folder)] = bench
    return bench
