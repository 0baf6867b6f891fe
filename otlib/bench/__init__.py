"""Speed and quality races against OTT-JAX: ``python -m otlib.bench {w2ot,enot} --dim D``.

Each race runs otlib and, when the ``peers`` extra is installed, OTT-JAX 0.6.0 on the same benchmark
pair, networks, batch and steps on the same machine (one after the other; ENOT's speed race interleaves
the two runs in short stretches), prints a table, and ends with one JSON line (the keys each race
documents) so scripts can collect the figures.
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterator

import jax

__all__ = ["batches", "peer_missing"]

PEERS_HINT = "install the peers extra: pip install -e '.[peers]' (ott-jax[neural]==0.6.0)"


def batches(sample: Callable[[jax.Array, int], jax.Array], key: jax.Array, n: int) -> Iterator[jax.Array]:
    """Fresh batches for OTT-JAX's training loops: ``sample(fold_in(key, i), n)``, one jitted call each."""
    draw = jax.jit(lambda k: sample(k, n))
    for i in itertools.count():
        yield draw(jax.random.fold_in(key, i))


def peer_missing(error: ImportError) -> None:
    """Say why OTT-JAX's side of a race is not run (its values are then null): the import that failed.

    The reason matters where OTT-JAX itself is installed but one of its own imports fails (a machine with its
    own JAX stack lacking, say, ``diffrax``), which "not installed" would hide.
    """
    print(f"OTT-JAX not run: {type(error).__name__}: {error}; {PEERS_HINT}")
