"""Measures the papers' experiments are run on: 2-D toy pairs, the 2-sphere, pictures (and digits).

Every measure is a pure JAX sampler ``sample(key, n) -> (n, d)`` (see :data:`otlib.core.method.Sampler`):
:mod:`otlib.data.toy2d` holds the 2-D pairs of Amos (2023) and of the ENOT tutorial,
:mod:`otlib.data.sphere` the measures on S² for ENOT's geodesic-cost figure, and
:mod:`otlib.data.images` the project's own pictures used as densities.
"""
