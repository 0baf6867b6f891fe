"""Speed and quality races against OTT-JAX: ``python -m otlib.bench {w2ot,enot} --dim D``.

Each race runs otlib and, when the ``peers`` extra is installed, OTT-JAX 0.6.0 on the same benchmark
pair, networks, batch and steps, one after the other on the same machine, prints a table, and ends with
one JSON line (the keys each race documents) so scripts can collect the figures.
"""
