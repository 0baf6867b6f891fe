"""Checkpoints of training runs: one ``.npz`` file, written atomically, read without pickle.

A checkpoint holds the leaves of a pytree (arrays only; typed PRNG keys are stored as their key data)
and a JSON record (step, logs, and a *fingerprint* of the run: method, configuration, steps, seeds,
key). :func:`restore` rebuilds the pytree on a template of the same structure (a freshly initialised
state) and refuses a checkpoint whose fingerprint differs, so a run never resumes from the state of
another configuration. ``np.load(allow_pickle=False)`` never executes anything from the file.

Why not Orbax: its checkpoints are directories written asynchronously, made for sharded multi-host
arrays; a training state here is a few MB on one host, and one atomic ``os.replace`` of one file is
simpler to reason about and to test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from otlib.core.files import atomic_write

__all__ = ["save", "restore", "CheckpointMismatchError"]


class CheckpointMismatchError(ValueError):
    """The checkpoint belongs to another run (configuration, seeds, steps or key differ)."""


def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic, jax.Array)):
        return {"__array__": np.asarray(value).tolist(), "dtype": str(np.asarray(value).dtype)}
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "__array__" in value:
            return np.asarray(value["__array__"], dtype=value["dtype"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _is_key(leaf: Any) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def save(path: str | os.PathLike, tree: Any, fingerprint: str, **extra: Any) -> None:
    """Write ``tree``'s leaves and ``extra`` (JSON-able, arrays allowed) to ``path`` atomically."""
    leaves = jax.tree.leaves(jax.device_get(tree))
    arrays = {f"leaf_{i:05d}": np.asarray(jax.random.key_data(x) if _is_key(x) else x) for i, x in enumerate(leaves)}
    meta = json.dumps({"fingerprint": fingerprint, "num_leaves": len(leaves), "extra": _to_json(extra)})
    with atomic_write(path, "wb") as f:
        np.savez(f, __meta__=np.array(meta), **arrays)


def restore(path: str | os.PathLike, template: Any, fingerprint: str) -> tuple[Any, dict[str, Any]]:
    """Read ``path`` into the structure of ``template``; return ``(tree, extra)``.

    Raises:
      CheckpointMismatchError: the file was written by another run, or its tree has another shape.
      ValueError: the file is not a readable checkpoint (truncated, corrupt).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            arrays = [data[f"leaf_{i:05d}"] for i in range(meta["num_leaves"])]
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"checkpoint {path} is unreadable ({err}); delete it to start the run afresh") from err
    if meta["fingerprint"] != fingerprint:
        raise CheckpointMismatchError(
            f"checkpoint {path} was written by another run (other method, configuration, seeds, steps or key); "
            f"delete it or choose another checkpoint path")
    leaves, treedef = jax.tree.flatten(template)
    if len(leaves) != len(arrays):
        raise CheckpointMismatchError(f"checkpoint {path} holds {len(arrays)} arrays, the run has {len(leaves)}")
    restored = []
    for want, got in zip(leaves, arrays):
        if _is_key(want):
            got = jax.random.wrap_key_data(got, impl=jax.random.key_impl(want))
        elif np.shape(want) != got.shape:
            raise CheckpointMismatchError(f"checkpoint {path}: an array of shape {got.shape} where the run has {np.shape(want)}")
        restored.append(jax.numpy.asarray(got))
    return jax.tree.unflatten(treedef, restored), _from_json(meta["extra"])
