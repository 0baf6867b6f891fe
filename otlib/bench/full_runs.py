"""Full-profile notebook runs kept as committed records, so that the quick notebooks can show them.

``python -m otlib.bench keep-run NOTEBOOK [--run FOLDER] [--part NAME]`` takes a finished full-profile run of
a notebook (by default its newest one under ``results/full/<notebook>/``; it refuses a run whose notebook raised)
and keeps:

* ``records/full/<notebook>.json``: the parameters it ran with, every table it saved (from its CSV files),
  its wall time from Papermill, the run folder's name, and the provenance (commit, CPU model and cores,
  JAX/Flax/Optax versions, date);
* its figures, copied to ``figures/full/<notebook>/`` (tracked; nothing else writes there).

A notebook whose full budget is too long for one sitting runs in parts (``amos2023_2d`` one pair at a time,
``-p "pairs=[rings]"``); ``--part rings`` keeps such a run as ``records/full/<notebook>/rings.json`` with its
figures in ``figures/full/<notebook>/rings/``, beside the other parts rather than over them.

:func:`load_full_run` reads a record back (``None`` when there is none), with the tables as DataFrames;
:func:`kept_parts` names the parts kept so far.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd
import yaml

from otlib.bench.paper import provenance, record_json, records_dir, utc_now
from otlib.core.files import atomic_write_text
from otlib.core.paths import ROOT, figures_dir, results_dir

__all__ = ["keep_run", "kept_parts", "load_full_run", "newest_run", "record_path", "RunNotUsable", "main"]

_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


class RunNotUsable(ValueError):
    """The run folder is not a finished, successful full-profile run of the notebook."""


def newest_run(notebook: str) -> Path:
    """The newest run folder of ``notebook`` under ``results/full/<notebook>/`` that holds an executed notebook."""
    folder = results_dir("full", notebook)
    runs = sorted(p for p in folder.glob("*/") if (p / f"{notebook}.ipynb").exists()) if folder.is_dir() else []
    if not runs:
        raise RunNotUsable(f"no full-profile run of {notebook} under {folder}; run "
                           f"`python -m otlib.reproduce --profile full --only {notebook}` first")
    return runs[-1]


def _executed(run: Path, notebook: str) -> dict[str, Any]:
    path = run / f"{notebook}.ipynb"
    try:
        executed = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunNotUsable(f"{path} cannot be read ({err})") from err
    meta = executed.get("metadata", {}).get("papermill", {})
    errors = [o for c in executed.get("cells", []) for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if meta.get("exception") or errors or not meta.get("end_time"):
        raise RunNotUsable(f"{path} did not finish cleanly (a cell raised, or it was interrupted): run it again")
    return meta


def _check_part(part: Optional[str]) -> None:
    if part is not None and not _PART.fullmatch(part):
        raise ValueError(f"part {part!r} must be letters, digits and _.+- (it names a file), e.g. a pair: rings")


def record_path(notebook: str, part: Optional[str] = None) -> Path:
    """``records/full/<notebook>.json``, or ``records/full/<notebook>/<part>.json`` for one part of a run kept
    in parts: a folder of their own, so that the HD cell records in ``records/``
    (:func:`otlib.bench.paper.load_records`) never meet a notebook's record."""
    _check_part(part)
    folder = records_dir() / "full"
    return folder / f"{notebook}.json" if part is None else folder / notebook / f"{part}.json"


def _figures(notebook: str, part: Optional[str]) -> Path:
    return figures_dir("full", notebook) if part is None else figures_dir("full", notebook, part)


def kept_parts(notebook: str) -> list[str]:
    """The parts of ``notebook`` kept so far (``keep-run --part``), sorted by name."""
    folder = records_dir() / "full" / notebook
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def keep_run(notebook: str, run: Optional[Path] = None, part: Optional[str] = None) -> Path:
    """Keep ``run`` (default: the newest) of ``notebook`` as ``records/full/<notebook>.json`` and its figures
    under ``figures/full/<notebook>/`` (or as ``part``: see the module docstring); return the record's path."""
    _check_part(part)
    run = Path(run) if run is not None else newest_run(notebook)
    meta = _executed(run, notebook)
    parameters = yaml.safe_load((run / "parameters.yaml").read_text())
    if parameters.get("profile") != "full":
        raise RunNotUsable(f"{run} ran the {parameters.get('profile')!r} profile; keep-run keeps full-profile runs")
    tables = {}
    for csv in sorted(run.glob("*.csv")):
        split = pd.read_csv(csv, index_col=0).to_dict("split")
        tables[csv.stem] = {"index": split["index"], "columns": split["columns"], "data": split["data"]}
    out = _figures(notebook, part)
    out.mkdir(parents=True, exist_ok=True)
    kept = []
    for figure in sorted((run / "figures").glob("*")):
        if figure.suffix in (".png", ".pdf"):
            tmp = out / f".{figure.name}.part"
            shutil.copyfile(figure, tmp)
            tmp.replace(out / figure.name)
            kept.append(_relative(out / figure.name))
    record = {"notebook": notebook, "part": part, "profile": "full", "parameters": parameters,
              "run_folder": _relative(run),
              "started": meta.get("start_time"), "finished": meta.get("end_time"),
              "wall_s": round(float(meta.get("duration") or 0.0), 1), "tables": tables, "figures": kept,
              "provenance": {**provenance(), "kept": utc_now()}}
    path = record_path(notebook, part)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, record_json(record))
    return path


def load_full_run(notebook: str, part: Optional[str] = None) -> Optional[dict[str, Any]]:
    """The kept full-profile run of ``notebook``, or its ``part`` (``None`` when none is committed);
    ``record["tables"]`` as DataFrames."""
    path = record_path(notebook, part)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    record["tables"] = {name: pd.DataFrame(t["data"], index=t["index"], columns=t["columns"])
                        for name, t in record["tables"].items()}
    return record


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otlib.bench keep-run", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook")
    parser.add_argument("--run", type=Path, help="the run folder (default: the newest full-profile run)")
    parser.add_argument("--part", help="keep it as one part of a run kept in parts, e.g. the pair it trained: rings")
    args = parser.parse_args(argv)
    try:
        path = keep_run(args.notebook, args.run, args.part)
    except ValueError as err:  # RunNotUsable, or a --part that cannot name a file
        print(f"error: {err}", file=sys.stderr)
        return 2
    record = json.loads(path.read_text())
    print(f"kept {record['run_folder']} ({record['wall_s'] / 60:.1f} min) as {_relative(path)}, "
          f"{len(record['tables'])} tables, {len(record['figures'])} figure files in "
          f"{_relative(_figures(args.notebook, args.part))}")
    return 0
