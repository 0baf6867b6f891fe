"""Optimal-transport mathematics shared by the papers: ground costs and their conjugates, convex-conjugate
solvers, Sinkhorn, and the Gaussian closed forms (Bures map, W2 between Gaussians)."""
