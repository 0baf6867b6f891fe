"""Run the notebooks: ``python -m otlib.reproduce [--profile quick|full] [--only NAME ...] [-p NAME=VALUE ...]``.

Each notebook's ``parameters`` cell holds its quick CPU defaults; ``notebooks/params/full/<name>.yaml``
holds the full GPU profile. Parameters are validated *before* any kernel starts: an unknown name or a
value of the wrong type stops the run naming the parameter and the accepted names (Papermill itself
only warns). Each notebook runs through Papermill in its own process (explicit kernel, the notebook's
folder as working directory, streamed cell output, a per-notebook timeout); the executed copies go to
``results/<profile>/<name>.ipynb`` and a summary table (notebook, status, wall time) is printed and
written to ``results/<profile>/summary.md``. The exit status is non-zero when any notebook failed.

``--store`` (quick profile, no overrides) writes each executed notebook back into ``notebooks/`` with
its outputs, minus Papermill's run metadata and injected cell: the committed notebooks are exactly
what a quick run prints, and what nbval re-checks.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import yaml

from otlib.core.files import atomic_write_text
from otlib.core.paths import ROOT, notebooks_dir, results_dir

__all__ = ["Notebook", "discover", "parameters_of", "resolve_parameters", "ParameterError", "strip_run_metadata",
           "main"]

KERNEL = "python3"
DEFAULT_TIMEOUT_S = {"quick": 1800, "full": 48 * 3600}


class ParameterError(ValueError):
    """A parameter that the notebook does not have, or a value of the wrong type."""


@dataclasses.dataclass(frozen=True)
class Notebook:
    name: str
    path: Path

    @property
    def full_params(self) -> Path:
        return notebooks_dir("params", "full", f"{self.name}.yaml")


def discover() -> dict[str, Notebook]:
    """Every ``notebooks/*.ipynb``, by name (file stem), in alphabetical order."""
    return {p.stem: Notebook(p.stem, p) for p in sorted(notebooks_dir().glob("*.ipynb"))}


def _parameters_cell(nb_json: dict, name: str) -> str:
    cells = [c for c in nb_json["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"notebook {name} must have exactly one cell tagged 'parameters', found {len(cells)}")
    source = cells[0]["source"]
    return "".join(source) if isinstance(source, list) else source


def parameters_of(notebook: Notebook) -> dict[str, Any]:
    """The defaults of a notebook's ``parameters`` cell (literal assignments only)."""
    import nbformat

    source = _parameters_cell(nbformat.read(notebook.path, as_version=4), notebook.name)
    defaults: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ParameterError(f"{notebook.name}: the parameters cell may hold only `name = literal` lines "
                                 f"(line {node.lineno}); derive values in the next cell")
        try:
            defaults[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ParameterError(f"{notebook.name}: parameter {node.targets[0].id!r} is not a literal "
                                 f"(line {node.lineno}); derive values in the next cell") from None
    return defaults


def _display(path: Path) -> str:
    """``path`` relative to the repository root when it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _type_name(value: Any) -> str:
    return type(value).__name__


def _coerce(name: str, value: Any, default: Any, notebook: str, accepted: list[str]) -> Any:
    """``value`` converted to the type of ``default``, or a :class:`ParameterError`."""
    def fail() -> ParameterError:
        return ParameterError(f"{notebook}: parameter {name!r} expects a {_type_name(default)} like {default!r}, "
                              f"got {value!r} ({_type_name(value)})")

    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise fail()
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail()
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise fail()
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise fail()
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise fail()
        if default:
            return [_coerce(f"{name}[{i}]", v, default[0], notebook, accepted) for i, v in enumerate(value)]
        return list(value)
    if isinstance(default, dict):
        if isinstance(value, dict):
            return value
        raise fail()
    return value


def resolve_parameters(notebook: Notebook, profile: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Parameters to inject: the full profile's file (if ``profile == "full"``) then ``overrides``.

    Every name is checked against the notebook's ``parameters`` cell and every value against the type of
    its default, before any kernel starts.
    """
    defaults = parameters_of(notebook)
    accepted = sorted(defaults)
    chosen: dict[str, Any] = {}
    if profile == "full":
        if not notebook.full_params.exists():
            raise ParameterError(f"{notebook.name}: no full profile at {_display(notebook.full_params)}")
        loaded = yaml.safe_load(notebook.full_params.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ParameterError(f"{notebook.full_params}: expected a mapping of parameter names to values")
        chosen.update(loaded)
    chosen.update(overrides)
    chosen["profile"] = profile
    for name, value in list(chosen.items()):
        if name not in defaults:
            raise ParameterError(f"{notebook.name}: unknown parameter {name!r}; accepted: {', '.join(accepted)}")
        chosen[name] = _coerce(name, value, defaults[name], notebook.name, accepted)
    return chosen


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["steps=100", "dims=[2, 4]"]`` -> ``{"steps": 100, "dims": [2, 4]}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.isidentifier():
            raise ParameterError(f"-p expects NAME=VALUE, got {item!r}")
        out[name] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def strip_run_metadata(nb_json: dict) -> dict:
    """Drop Papermill's injected cell and run metadata (timings, paths) from an executed notebook."""
    nb_json["metadata"].pop("papermill", None)
    cells = []
    for cell in nb_json["cells"]:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
        cells.append(cell)
    for count, cell in enumerate((c for c in cells if c["cell_type"] == "code"), start=1):
        cell["execution_count"] = count
        for output in cell.get("outputs", []):
            if "execution_count" in output:
                output["execution_count"] = count
    nb_json["cells"] = cells
    return nb_json


def _run_one(notebook: Notebook, params: dict[str, Any], profile: str, output: Path, timeout: float,
             quiet_progress: bool) -> tuple[str, float]:
    output.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OTLIB_PROFILE=profile, PYTHONUNBUFFERED="1")
    env["OTLIB_PROGRESS"] = "text"
    if quiet_progress:
        env["TQDM_DISABLE"] = "1"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(params, f)
        params_file = f.name
    cmd = [sys.executable, "-m", "papermill", str(notebook.path), str(output), "-f", params_file,
           "-k", KERNEL, "--cwd", str(notebook.path.parent), "--log-output", "--no-progress-bar",
           "--request-save-on-cell-execute"]
    start = time.perf_counter()
    try:
        status = "ok" if subprocess.run(cmd, env=env, timeout=timeout).returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        status = f"timeout ({timeout:.0f} s)"
    finally:
        os.unlink(params_file)
    return status, time.perf_counter() - start


def _store(executed: Path, notebook: Notebook) -> None:
    import json

    nb_json = strip_run_metadata(json.loads(executed.read_text()))
    atomic_write_text(notebook.path, json.dumps(nb_json, indent=1, ensure_ascii=False) + "\n")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otlib.reproduce", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="list the notebooks and their parameters, run nothing")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick",
                        help="quick: CPU defaults (minutes); full: the papers' budgets (GPU, hours)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks")
    parser.add_argument("-p", dest="params", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter (value read as YAML: 3, 0.5, true, [2, 4], text)")
    parser.add_argument("--timeout", type=float, help="seconds per notebook (default: 1800 quick, 48 h full)")
    parser.add_argument("--store", action="store_true",
                        help="write executed quick runs back into notebooks/ (outputs kept, run metadata stripped)")
    args = parser.parse_args(argv)

    notebooks = discover()
    if args.list:
        for nb in notebooks.values():
            params = ", ".join(f"{k}={v!r}" for k, v in parameters_of(nb).items())
            full = "yes" if nb.full_params.exists() else "no"
            print(f"{nb.name}\n  quick defaults: {params}\n  full profile file: {full}")
        return 0
    names = args.only or list(notebooks)
    unknown = [n for n in names if n not in notebooks]
    if unknown:
        print(f"error: no notebook named {', '.join(unknown)}; available: {', '.join(notebooks)}", file=sys.stderr)
        return 2
    if args.store and (args.profile != "quick" or args.params):
        print("error: --store keeps only plain quick runs (no -p overrides, profile quick)", file=sys.stderr)
        return 2
    try:
        overrides = parse_overrides(args.params)
        plan = {name: resolve_parameters(notebooks[name], args.profile, overrides) for name in names}
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    timeout = args.timeout or DEFAULT_TIMEOUT_S[args.profile]
    rows = []
    for name, params in plan.items():
        output = results_dir(args.profile, f"{name}.ipynb")
        print(f"==> {name} ({args.profile}): {', '.join(f'{k}={v!r}' for k, v in params.items())}", flush=True)
        status, wall = _run_one(notebooks[name], params, args.profile, output, timeout, quiet_progress=args.store)
        if status == "ok" and args.store:
            _store(output, notebooks[name])
        rows.append((name, status, wall, output))

    width = max(len(r[0]) for r in rows)
    lines = [f"| {'notebook':<{width}} | status | wall time |", f"|{'-' * (width + 2)}|--------|-----------|"]
    lines += [f"| {name:<{width}} | {status:<6} | {wall:7.1f} s |" for name, status, wall, _ in rows]
    table = "\n".join(lines)
    print(f"\n{table}\nexecuted notebooks: {_display(results_dir(args.profile))}/")
    atomic_write_text(results_dir(args.profile, "summary.md"), table + "\n")
    return 0 if all(status == "ok" for _, status, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
