"""The published HD-table values, in one place: forward L2-UVP (%) per row and dimension D.

Provenance tags: ``[poster]`` read from the official poster of Korotin et al. (2021, arXiv:2106.01954);
``[S]`` second-hand, quoted by a later paper (Buzun et al. 2024, arXiv:2403.03777, Table 2) and not checked
against the original. Every table, figure and ratio of the project reads these.
"""

from __future__ import annotations

__all__ = ["PUBLISHED_HD", "PUBLISHED"]

PUBLISHED_HD: dict[str, dict] = {
    "ENOT": {"source": "Buzun et al. (2024), Table 2 [S]",
             "values": {2: 0.02, 4: 0.03, 8: 0.14, 16: 0.24, 32: 0.67, 64: 0.56, 128: 0.30, 256: 0.51}},
    "W2OT best": {"source": "Amos (2023) best row, as reprinted by Buzun et al. (2024) [S]",
                  "values": {2: 0.03, 4: 0.22, 8: 0.60, 16: 0.80, 32: 2.09, 64: 2.08, 128: 0.67, 256: 0.65}},
    "W2GN (Korotin)": {"source": "Korotin et al. (2021) row ⌊W2⌉ [poster]",
                       "values": {2: 0.1, 4: 0.7, 8: 2.6, 16: 3.3, 32: 6.0, 64: 7.2, 128: 2.0, 256: 2.7}},
    "MM (Korotin)": {"source": "Korotin et al. (2021) row ⌊MM⌉ [poster]",
                     "values": {2: 0.1, 4: 0.3, 8: 0.9, 16: 2.2, 32: 4.2, 64: 3.2, 128: 3.1, 256: 4.1}},
    "linear": {"source": "Korotin et al. (2021) row ⌊L⌉ [poster]",
               "values": {2: 14.1, 4: 14.9, 8: 27.3, 16: 41.6, 32: 55.3, 64: 63.9, 128: 63.6, 256: 67.4}},
    "identity": {"source": "Korotin et al. (2021) row ⌊ID⌉ [poster]",
                 "values": {2: 32.7, 4: 42.0, 8: 58.6, 16: 87.0, 32: 121.0, 64: 137.0, 128: 145.0, 256: 153.0}},
}
"""HD benchmark forward L2-UVP (%) published per row and D (Korotin et al. 2021, arXiv:2106.01954;
Buzun et al. 2024, arXiv:2403.03777).

Amos (2023)'s own per-row cells are not reproduced here: the notebook shows the best W2OT row as ENOT
reprints it, and says so.
"""

PUBLISHED: dict[int, dict[str, float]] = {
    d: {"identity": PUBLISHED_HD["identity"]["values"][d], "linear": PUBLISHED_HD["linear"]["values"][d]}
    for d in PUBLISHED_HD["identity"]["values"]
}
"""The baselines' rows ⌊ID⌉ and ⌊L⌉ by D (a view of :data:`PUBLISHED_HD`)."""
