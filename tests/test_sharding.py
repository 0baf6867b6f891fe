"""The driver's seed axis on a device mesh: the CPU split into 4 devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``, in subprocesses) trains the same seeds to the same
parameters as one device, seed counts not divisible by the device count included, and a checkpoint written
on 4 devices resumes on 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from otlib.core.paths import ROOT

SCRIPT = textwrap.dedent('''
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from otlib.core import train as driver
    from otlib.enot2024 import enot

    out, checkpoint, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    config = enot.paper_hd_config(hidden=(16, 16), batch_size=64, num_steps=200)

    def source(key, n):
        return jax.random.normal(key, (n, 2))

    def target(key, n):
        return 0.5 * jax.random.normal(key, (n, 2)) + jnp.array([2.0, -1.0])

    def evaluate(state, key):
        return {"norm": sum(jnp.sum(x ** 2) for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating))}

    method = enot.enot(config, source, target, dim=2, eval_fn=evaluate)
    key = jax.random.key(7)
    arrays, info = {}, {"devices": len(jax.devices())}
    for seeds in (6, 4):
        result = driver.train(method, key, num_seeds=seeds, chunk_size=50, eval_every=100, progress=False)
        leaves = jax.tree.leaves(result.state)
        arrays.update({f"s{seeds}_leaf{i}": np.asarray(x) for i, x in enumerate(leaves)})
        arrays[f"s{seeds}_loss"] = result.history["loss"]
        arrays[f"s{seeds}_norm"] = result.evals["norm"]
        info[f"s{seeds}_padded"] = driver._SeedLayout(seeds).padded
        info[f"s{seeds}_state_devices"] = len(leaves[0].sharding.device_set)
        info[f"s{seeds}_shape"] = list(leaves[0].shape)
    info["s1_padded"] = driver._SeedLayout(1).padded
    if mode == "write":  # stop half-way on this device count; the other process resumes
        driver.train(method, key, num_seeds=6, chunk_size=50, eval_every=100, progress=False,
                     checkpoint=checkpoint, until=100)
    else:
        result = driver.train(method, key, num_seeds=6, chunk_size=50, eval_every=100, progress=False,
                              checkpoint=checkpoint)
        arrays.update({f"resumed_leaf{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(result.state))})
    np.savez(out, **arrays)
    print(json.dumps(info))
''')

RTOL, ATOL = 1e-5, 1e-6
"""Tolerance between device counts after 200 steps (float32): a seed's arithmetic is the same, but XLA may
fuse and vectorise a batch of 2 seeds differently from a batch of 6 (2.4e-7 apart at most when written)."""


def _run(tmp_path: Path, devices: int, mode: str) -> tuple[dict, dict]:
    env = dict(os.environ, JAX_PLATFORMS="cpu", TQDM_DISABLE="1",
               XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip())
    out = tmp_path / f"d{devices}.npz"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out), str(tmp_path / "ckpt.npz"), mode], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    with np.load(out) as z:
        return info, {k: z[k] for k in z.files}


@pytest.mark.slow
def test_seeds_on_four_devices_match_one_device(tmp_path):
    four_info, four = _run(tmp_path, 4, "write")
    one_info, one = _run(tmp_path, 1, "resume")
    assert four_info["devices"] == 4 and one_info["devices"] == 1
    # 6 seeds on 4 devices: padded to 8 and split; 4 seeds: one per device; 1 seed: unchanged.
    assert (four_info["s6_padded"], four_info["s4_padded"], four_info["s1_padded"]) == (8, 4, 1)
    assert four_info["s4_state_devices"] == 4 and one_info["s4_state_devices"] == 1
    assert four_info["s6_shape"][0] == 6 and one_info["s6_padded"] == 6
    assert four.keys() - {k for k in four if k.startswith("resumed")} == one.keys() - {k for k in one if
                                                                                          k.startswith("resumed")}
    for name in (k for k in one if not k.startswith("resumed")):
        np.testing.assert_allclose(four[name], one[name], rtol=RTOL, atol=ATOL, err_msg=name)
    # The checkpoint written on 4 devices (6 seeds, half-way) resumes on 1 to the uninterrupted parameters.
    for i in range(sum(k.startswith("s6_leaf") for k in one)):
        np.testing.assert_allclose(one[f"resumed_leaf{i}"], one[f"s6_leaf{i}"], rtol=RTOL, atol=ATOL)
