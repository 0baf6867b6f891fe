"""Entry point: ``python -m otlib.bench {w2ot,enot,record,paper,accuracy,keep-run} [options]`` (``--help`` for each)."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {"w2ot": ("otlib.bench.w2ot", "main"), "enot": ("otlib.bench.enot", "main"),
            "record": ("otlib.bench.paper", "main_record"), "paper": ("otlib.bench.paper", "main_paper"),
            "accuracy": ("otlib.bench.paper", "main_accuracy"), "keep-run": ("otlib.bench.full_runs", "main")}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m otlib.bench {{{','.join(COMMANDS)}}} [options]", file=sys.stderr)
        return 2
    module, function = COMMANDS[argv[0]]
    return getattr(importlib.import_module(module), function)(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
