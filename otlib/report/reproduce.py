"""Run the notebooks: ``python -m otlib.reproduce [--profile quick|full] [--only NAME ...] [-p NAME=VALUE ...]``.

Each notebook's ``parameters`` cell holds its quick CPU defaults, one documented line per parameter with its
rules (:mod:`otlib.report.parameters`; ``--list`` prints them); ``notebooks/params/full/<name>.yaml`` holds the
full GPU profile. Every value is checked *before* any kernel starts, with the rules the notebook's own
validation cell applies: a wrong one stops the run with one line and exit status 2.

Each run of a notebook gets its own folder, ``results/<profile>/<name>/<run id>/``: the parameters
(``parameters.yaml``), the executed notebook, its tables and figures, and Papermill's full log. Nothing
tracked is written, and two runs never share a folder; ``results/<profile>/summary.md`` gains one line per
run. Papermill runs in a child process that dies with the runner, in a private temporary folder (the
parameters file, the kernel's connection file) removed on every exit path the runner can catch; the kernel
exits with it. The exit status is 1 when a notebook failed (its failing cell's error is printed), 2 for a
usage error.

``--store`` (quick profile, default parameters: ``make notebooks``) is the one way to change tracked files: the
figures go to ``figures/quick/<name>/`` and the executed notebook, minus Papermill's run metadata, widget
state and injected cell, back into ``notebooks/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import yaml

from otlib.core.files import atomic_write_text
from otlib.core.paths import ROOT, notebooks_dir, results_dir, shared_dir
from otlib.report import parameters as params_mod
from otlib.report.notebook import ENV_RUN_DIR, ENV_STORE_FIGURES, new_run_id
from otlib.report.parameters import ParameterError

__all__ = ["NotebookFile", "discover", "parameters_of", "resolve_parameters", "ParameterError", "strip_run_metadata",
           "parse_overrides", "data_dir_env", "main", "KERNEL", "KERNELSPEC"]

KERNEL = "python3"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": KERNEL}
"""The kernelspec JupyterLab writes for the environment's kernel: committed notebooks carry it verbatim,
so opening one does not modify it."""
DEFAULT_TIMEOUT_S = {"quick": 1800, "full": 48 * 3600}
ENV_DATA_DIR = "OTLIB_DATA_DIR"
_TMP_PREFIX = "otlib-run-"


class NotebookFile:
    """A notebook of ``notebooks/``: its name (file stem) and path."""

    def __init__(self, name: str, path: Path):
        self.name, self.path = name, Path(path)

    def __repr__(self) -> str:
        return f"NotebookFile({self.name!r}, {str(self.path)!r})"

    @property
    def full_params(self) -> Path:
        return notebooks_dir("params", "full", f"{self.name}.yaml")


def discover() -> dict[str, NotebookFile]:
    """Every ``notebooks/*.ipynb``, by name (file stem), in alphabetical order."""
    return {p.stem: NotebookFile(p.stem, p) for p in sorted(notebooks_dir().glob("*.ipynb"))}


def spec_of(notebook: NotebookFile) -> dict[str, params_mod.Parameter]:
    """The parameters a notebook declares (name, default, description, rules)."""
    return params_mod.read_notebook(notebook.path, notebook.name)


def parameters_of(notebook: NotebookFile) -> dict[str, Any]:
    """The defaults of a notebook's ``parameters`` cell (literal assignments only)."""
    return {name: p.default for name, p in spec_of(notebook).items()}


def _display(path: Path) -> str:
    """``path`` relative to the repository root when it is inside it."""
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _yaml_problem(err: yaml.YAMLError) -> str:
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} (column {mark.column + 1})" if mark is not None else problem


def resolve_parameters(notebook: NotebookFile, profile: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Parameters to inject: the full profile's file (if ``profile == "full"``) then ``overrides``.

    Every name is checked against the notebook's ``parameters`` cell and every value against its type and
    rules, before any kernel starts. ``profile`` comes from ``--profile`` only.
    """
    if "profile" in overrides:
        raise ParameterError(f"-p profile={overrides['profile']}: choose the profile with --profile "
                             f"{overrides['profile']} (it also loads the profile's parameter file)")
    spec = spec_of(notebook)
    chosen: dict[str, Any] = {}
    if profile == "full":
        if not notebook.full_params.exists():
            raise ParameterError(f"{notebook.name}: no full profile at {_display(notebook.full_params)}")
        try:
            loaded = yaml.safe_load(notebook.full_params.read_text()) or {}
        except yaml.YAMLError as err:
            raise ParameterError(f"{_display(notebook.full_params)}: not valid YAML: {_yaml_problem(err)}") from None
        if not isinstance(loaded, dict):
            raise ParameterError(f"{_display(notebook.full_params)}: expected a mapping of parameter names to values")
        if loaded.get("profile", profile) != profile:
            raise ParameterError(f"{_display(notebook.full_params)}: says profile {loaded['profile']!r}")
        chosen.update(loaded)
    chosen.update(overrides)
    chosen["profile"] = profile
    return params_mod.check_values(chosen, spec, notebook.name)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["steps=100", "dims=[2, 4]"]`` -> ``{"steps": 100, "dims": [2, 4]}`` (values read as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.isidentifier():
            raise ParameterError(f"-p expects NAME=VALUE, got {item!r}")
        try:
            out[name] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ParameterError(f"-p {item!r}: the value is not valid YAML: {_yaml_problem(err)}") from None
    return out


def strip_run_metadata(nb_json: dict) -> dict:
    """Drop Papermill's injected cell and run metadata (timings, paths) and widget state from an executed
    notebook; set JupyterLab's kernelspec and renumber the cells from 1."""
    nb_json["metadata"].pop("papermill", None)
    nb_json["metadata"].pop("widgets", None)
    nb_json["metadata"]["kernelspec"] = dict(KERNELSPEC)
    cells = []
    for cell in nb_json["cells"]:
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
        cells.append(cell)
    for count, cell in enumerate((c for c in cells if c["cell_type"] == "code"), start=1):
        cell["execution_count"] = count
        outputs = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                data.pop("application/vnd.jupyter.widget-view+json")
                if not data:
                    continue
            if "execution_count" in output:
                output["execution_count"] = count
            outputs.append(output)
        if "outputs" in cell:
            cell["outputs"] = outputs
    nb_json["cells"] = cells
    return nb_json


def dump_notebook(nb_json: dict) -> str:
    """A notebook's JSON as Jupyter writes it (nbformat: indent 1, sorted keys, UTF-8 text, trailing newline),
    so that opening and saving it in JupyterLab changes no byte."""
    return json.dumps(nb_json, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


# --- processes and temporary files --------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """In the child: be killed when the runner dies, even by SIGKILL (Linux's PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from ``/proc``; empty where there is none)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = parents.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _reap(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """Stop Papermill and everything it started (the kernel runs in a session of its own)."""
    if proc.poll() is not None:
        return
    victims = _children(proc.pid)
    for pid in [proc.pid, *victims]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace_s)
    for pid in [proc.pid, *victims]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace_s)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temp(root: Optional[Path] = None) -> list[Path]:
    """Remove the private temporary folders of runners that are gone (killed by SIGKILL); return them."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for folder in root.glob(f"{_TMP_PREFIX}*"):
        match = re.match(rf"{_TMP_PREFIX}(\d+)-", folder.name)
        if match and folder.is_dir() and folder.stat().st_uid == os.getuid() and not _pid_alive(int(match.group(1))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextlib.contextmanager
def private_temp():
    """A temporary folder only this user can read (mode 0700), removed on exit."""
    folder = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- output -------------------------------------------------------------------------------------------------------

_NOISE = re.compile(r"^(Input Notebook:|Output Notebook:|Executing notebook with kernel:|Executing:|Working directory:|"
                    r"Executing Cell \d+-*|Ending Cell \d+-*|Black is not installed|Passed unknown parameter|"
                    r"Unable to parse line \d+|\[IPKernelApp\] WARNING|"
                    r".*(zmq|ZMQ|[Tt]ransport|heartbeat|jupyter_client|traitlets).*[Ww]arn.*|"
                    r"\s*warn(ings)?\.warn\(.*|.*(Deprecation|Runtime)Warning: .*(jupyter|zmq|papermill).*)")


class _Filter:
    """Papermill's output as the user needs it: cell output only, no traceback of its own (the failing
    cell's error is printed from the executed notebook instead); everything goes to the log file."""

    def __init__(self, log, verbose: bool):
        self.log, self.verbose, self.in_traceback = log, verbose, False

    def __call__(self, line: str) -> None:
        self.log.write(line)
        self.log.flush()
        if self.verbose:
            sys.stdout.write(line)
        else:
            if line.startswith("Traceback (most recent call last):") or line.startswith("papermill.exceptions"):
                self.in_traceback = True
            if self.in_traceback or _NOISE.match(line.rstrip("\n")):
                return
            sys.stdout.write(line)
        sys.stdout.flush()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failing_cell(executed: Path) -> Optional[str]:
    """``cell N (first line): Error: message`` for the first cell of ``executed`` that raised, if any (N counts
    the notebook's own cells from 0, as nbformat does)."""
    try:
        nb_json = json.loads(Path(executed).read_text())
    except (OSError, ValueError):
        return None
    added = {"injected-parameters", "papermill-error-cell-tag"}  # Papermill's own cells, not the notebook's
    cells = [c for c in nb_json.get("cells", []) if not added & set(c.get("metadata", {}).get("tags", []))]
    for index, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                source = "".join(cell.get("source", "")).strip().splitlines()
                first = next((s for s in source if not s.startswith("#")), source[0] if source else "")
                ename, evalue = output.get("ename", "Error"), _ANSI.sub("", output.get("evalue", "")).strip()
                lines = evalue.splitlines()
                message = f"{ename}: {lines[0]}" + (" ..." if len(lines) > 1 else "") if lines else ename
                return f"cell {index} ({first[:60]}): {message}"
    return None


# --- one run ------------------------------------------------------------------------------------------------------

def data_dir_env() -> tuple[dict[str, str], str]:
    """``OTLIB_DATA_DIR`` for the kernels, and a line saying where the benchmark files come from.

    An explicit ``$OTLIB_DATA_DIR`` wins; else a ``../shared/w2bench/Mix3toMix10`` copy beside the checkout
    (as the Makefile does); else the loader downloads into ``data/w2bench/``.
    """
    explicit = os.environ.get(ENV_DATA_DIR)
    if explicit:
        return {}, f"benchmark files: ${ENV_DATA_DIR}={explicit}"
    shared = shared_dir("w2bench", "Mix3toMix10")
    if (shared / "2_v1.pt").exists():
        return {ENV_DATA_DIR: str(shared)}, f"benchmark files: ${ENV_DATA_DIR}={shared} (found beside the checkout)"
    return {}, "benchmark files: data/w2bench/ (downloaded on first use; set $OTLIB_DATA_DIR to use a local copy)"


def prepare_run_dir(profile: str, name: str) -> Path:
    """Create ``results/<profile>/<name>/<run id>/`` and prove it is writable (``OSError`` otherwise)."""
    for _ in range(10):
        folder = results_dir(profile, name, new_run_id())
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        return folder
    raise FileExistsError(f"could not find a free run folder under {results_dir(profile, name)}")


def _run_one(notebook: NotebookFile, params: dict[str, Any], profile: str, run_dir: Path, timeout: float, *,
             store: bool = False, verbose: bool = False, extra_env: Optional[dict[str, str]] = None
             ) -> tuple[str, float, Path]:
    """Execute one notebook with Papermill into ``run_dir``; return (status, wall seconds, executed path)."""
    output = run_dir / f"{notebook.name}.ipynb"
    atomic_write_text(run_dir / "parameters.yaml", yaml.safe_dump(params, sort_keys=False, allow_unicode=True))
    env = dict(os.environ, OTLIB_PROFILE=profile, PYTHONUNBUFFERED="1", OTLIB_PROGRESS="text",
               **{ENV_RUN_DIR: str(run_dir)}, **(extra_env or {}))
    env.pop(ENV_STORE_FIGURES, None)
    if store:
        env[ENV_STORE_FIGURES] = "1"
        env["TQDM_DISABLE"] = "1"
    start = time.perf_counter()
    status = "failed"
    with private_temp() as tmp, open(run_dir / "papermill.log", "w") as log:
        env["JUPYTER_RUNTIME_DIR"] = str(tmp)  # the kernel's connection file (its HMAC key) lives here
        env["TMPDIR"] = str(tmp)
        params_file = tmp / "parameters.yaml"
        params_file.write_text(yaml.safe_dump(params))
        cmd = [sys.executable, "-m", "papermill", str(notebook.path), str(output), "-f", str(params_file),
               "-k", KERNEL, "--cwd", str(notebook.path.parent), "--log-output", "--no-progress-bar",
               "--request-save-on-cell-execute"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        timed_out = threading.Event()

        def on_timeout() -> None:
            timed_out.set()
            _reap(proc)
        timer = threading.Timer(timeout, on_timeout)
        timer.daemon = True
        timer.start()
        show = _Filter(log, verbose)
        try:
            for line in proc.stdout:
                show(line)
            proc.wait()
            status = "ok" if proc.returncode == 0 else "failed"
            if timed_out.is_set():
                status = f"timeout ({timeout:.0f} s)"
        finally:
            timer.cancel()
            _reap(proc)
    return status, time.perf_counter() - start, output


def _sources(nb_json: dict) -> list[tuple[str, str]]:
    return [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for c in nb_json["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def _store(executed: Path, notebook: NotebookFile) -> Optional[str]:
    """Write the executed notebook back into ``notebooks/`` (run metadata stripped); a reason if not."""
    nb_json = strip_run_metadata(json.loads(executed.read_text()))
    current = json.loads(notebook.path.read_text())
    if _sources(current) != _sources(nb_json):
        return f"{_display(notebook.path)} changed while it ran; not stored (run it again)"
    atomic_write_text(notebook.path, dump_notebook(nb_json))
    return None


_SUMMARY_HEADER = ("| started (UTC) | notebook | run | status | wall time | parameters |\n"
                   "|---|---|---|---|---|---|\n")


def append_summary(profile: str, line: str) -> Path:
    """Add one run's line to ``results/<profile>/summary.md`` (created with its header if new)."""
    path = results_dir(profile, "summary.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(_SUMMARY_HEADER)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode())
    finally:
        os.close(fd)
    return path


def _missing_hint(names: list[str], overrides: dict[str, Any], notebooks: dict[str, NotebookFile]) -> Optional[str]:
    """Without ``--only``, a ``-p`` name that some notebooks lack: say which have it."""
    for key in overrides:
        lacking = [n for n in names if key not in parameters_of(notebooks[n])]
        if lacking:
            having = [n for n in names if n not in lacking]
            where = f"--only {' '.join(having)}" if having else "--only with a notebook that has it"
            return (f"-p {key}=... applies to every notebook, and {', '.join(lacking)} "
                    f"{'has' if len(lacking) == 1 else 'have'} no parameter {key!r}: add {where}")
    return None


def _exit_cleanly_on_signals() -> None:
    """SIGTERM and SIGHUP end the runner through its ``finally`` blocks: Papermill and the kernel are reaped
    and the private temporary folder removed (SIGKILL cannot be caught: see :func:`_die_with_parent`)."""
    def stop(signum, frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):  # not the main thread, or no such signal
            signal.signal(sig, stop)


def _list(notebooks: dict[str, NotebookFile]) -> None:
    for nb in notebooks.values():
        full = _display(nb.full_params) if nb.full_params.exists() else "none"
        print(f"{nb.name}  (full profile: {full})")
        for name, p in spec_of(nb).items():
            rules = f" [{p.rules}]" if p.rules else ""
            print(f"  {name} = {p.default!r}\n      {p.description or '(no description)'}{rules}")
        print()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otlib.reproduce", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true",
                        help="list the notebooks and their parameters (default, description, rules); run nothing")
    parser.add_argument("--profile", choices=("quick", "full"), default="quick",
                        help="quick: CPU defaults (minutes); full: the papers' budgets (GPU, hours)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these notebooks")
    parser.add_argument("-p", dest="params", action="append", default=[], metavar="NAME=VALUE",
                        help="override a parameter (value read as YAML: 3, 0.5, true, [2, 4], text)")
    parser.add_argument("--timeout", type=float, help="seconds per notebook (default: 1800 quick, 48 h full)")
    parser.add_argument("--store", action="store_true",
                        help="the committed quick run: figures into figures/quick/, executed notebooks back into "
                             "notebooks/ (outputs kept, run metadata stripped); no -p")
    parser.add_argument("--verbose", action="store_true",
                        help="print everything Papermill prints (cell markers, kernel warnings, tracebacks)")
    args = parser.parse_args(argv)

    notebooks = discover()
    try:
        if args.list:
            _list(notebooks)
            return 0
        names = args.only or list(notebooks)
        unknown = [n for n in names if n not in notebooks]
        if unknown:
            raise ParameterError(f"no notebook named {', '.join(unknown)}; available: {', '.join(notebooks)}")
        if args.store and (args.profile != "quick" or args.params):
            raise ParameterError("--store keeps only the committed quick runs (profile quick, no -p overrides)")
        overrides = parse_overrides(args.params)
        if not args.only and (hint := _missing_hint(names, overrides, notebooks)):
            raise ParameterError(hint)
        plan = {name: resolve_parameters(notebooks[name], args.profile, overrides) for name in names}
    except ParameterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        run_dirs = {name: prepare_run_dir(args.profile, name) for name in plan}
    except OSError as err:
        where = err.filename or results_dir(args.profile)
        print(f"error: cannot write the run folders under {_display(results_dir())}/ ({_display(Path(where))}: "
              f"{err.strerror or err}); make results/ writable, or run from a writable copy of the repository",
              file=sys.stderr)
        return 2

    clean_stale_temp()
    _exit_cleanly_on_signals()
    data_env, data_line = data_dir_env()
    print(data_line, flush=True)
    timeout = args.timeout or DEFAULT_TIMEOUT_S[args.profile]
    rows = []
    for name, params in plan.items():
        run_dir = run_dirs[name]
        changed = {k: v for k, v in params.items() if k in overrides or args.profile == "full"}
        shown = ", ".join(f"{k}={v!r}" for k, v in changed.items() if k != "profile") or "defaults"
        print(f"==> {name} ({args.profile}; {shown}) -> {_display(run_dir)}/", flush=True)
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        status, wall, executed = _run_one(notebooks[name], params, args.profile, run_dir, timeout,
                                          store=args.store, verbose=args.verbose, extra_env=data_env)
        if status != "ok":
            print(f"\n{name} {status}: {failing_cell(executed) or 'see ' + _display(run_dir / 'papermill.log')}\n"
                  f"  executed notebook: {_display(executed)}\n  full log: {_display(run_dir / 'papermill.log')}",
                  file=sys.stderr, flush=True)
        elif args.store:
            refused = _store(executed, notebooks[name])
            if refused:
                status = "not stored"
                print(f"\n{name}: {refused}", file=sys.stderr, flush=True)
        rows.append((name, status, wall, run_dir))
        append_summary(args.profile, f"| {started} | {name} | {run_dir.name} | {status} | {wall:.1f} s | "
                                     f"{shown.replace('|', '/')} |")

    width = max(len(r[0]) for r in rows)
    lines = [f"| {'notebook':<{width}} | status | wall time | run folder |",
             f"|{'-' * (width + 2)}|--------|-----------|------------|"]
    lines += [f"| {name:<{width}} | {status:<6} | {wall:7.1f} s | {_display(folder)}/ |"
              for name, status, wall, folder in rows]
    print("\n" + "\n".join(lines) + f"\nall runs: {_display(results_dir(args.profile, 'summary.md'))}")
    return 0 if all(status == "ok" for _, status, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
