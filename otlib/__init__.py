"""otlib: a JAX companion library to neural optimal-transport papers."""
