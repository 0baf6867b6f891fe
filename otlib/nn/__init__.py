"""Networks: MLPs, Amos's potential MLP and amortizer, and the input-convex neural network (ICNN)."""
