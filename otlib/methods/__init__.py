"""Training methods of the three papers, each a factory of :class:`otlib.method.Method` records."""
