"""Entry point: ``python -m otlib.bench {w2ot,enot} --dim D [options]`` (``--help`` for each race)."""

from __future__ import annotations

import importlib
import sys

RACES = {"w2ot": "otlib.bench.w2ot", "enot": "otlib.bench.enot"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in RACES:
        print(f"usage: python -m otlib.bench {{{','.join(RACES)}}} --dim D [options]", file=sys.stderr)
        return 2
    race = importlib.import_module(RACES[argv[0]])
    return race.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
