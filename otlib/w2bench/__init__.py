"""Korotin et al. (2021) continuous Wasserstein-2 benchmark, HD ("Mix3toMix10") and CelebA64, torch-free in JAX.

Korotin et al. 2021, arXiv:2106.01954; official code ``iamalexkorotin/Wasserstein2Benchmark``. ``hd(D)``
gives the pair (P = Mix3, Q = T*#P) with its ground-truth map; :mod:`otlib.w2bench.metrics` the L2-UVP /
cos metrics and the identity / linear baselines; ``celeba64(stage)`` the CelebA64 pairs.
"""

from __future__ import annotations

from otlib.w2bench.celeba import CelebA64Benchmark, celeba64
from otlib.w2bench.conv_icnn64 import load_conv_icnn64
from otlib.w2bench.dense_icnn import load_dense_icnn
from otlib.w2bench.files import DIMS
from otlib.w2bench.hd import HDBenchmark, hd
from otlib.w2bench.metrics import (PUBLISHED, apply_linear_map, cos_similarity, coupled_sample, evaluator,
                                   identity_l2_uvp, l2_uvp, l2_uvp_inverse, linear_l2_uvp, linear_map)
from otlib.w2bench.resnet_g import load_resnet_g

__all__ = ["hd", "HDBenchmark", "celeba64", "CelebA64Benchmark", "load_dense_icnn", "load_conv_icnn64", "load_resnet_g",
           "l2_uvp", "l2_uvp_inverse", "cos_similarity", "linear_map", "apply_linear_map", "identity_l2_uvp",
           "linear_l2_uvp", "coupled_sample", "evaluator", "PUBLISHED", "DIMS"]
