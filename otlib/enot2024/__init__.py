"""Buzun, Bobrin, Dylov, *Expectile-Regularised Neural Optimal Transport*, NeurIPS 2024 (arXiv:2403.03777):
the ENOT method and its expectile regulariser."""
