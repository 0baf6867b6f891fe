"""Amos, *On amortizing convex conjugates for optimal transport*, ICLR 2023 (arXiv:2210.12153): the W2OT
method (dual potentials with amortized, optionally fine-tuned conjugates), its amortization losses, and the
2-D experiments and figures."""
