"""The notebook runner: checks before any kernel, one-line errors, a folder per run, and a kernel that never
outlives the runner (real Papermill runs of tiny notebooks)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from otlib.report import reproduce

PARAMS = ("profile = 'quick'  # which profile [in {'quick', 'full'}]\n"
          "steps = 10  # training steps [>= 1]\n"
          "rate = 0.5  # learning rate [in (0, 1]]\n"
          "dims = [2, 4]  # dimensions D [each in {2, 4, 8}; non-empty]\n")


def make_notebook(folder, name="demo", params=PARAMS, body="print(profile, steps * 2, rate, sum(dims))"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# demo"), cell, nbformat.v4.new_code_cell(body)]
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def demo(tmp_path, monkeypatch):
    (tmp_path / "params" / "full").mkdir(parents=True)
    make_notebook(tmp_path)
    (tmp_path / "params" / "full" / "demo.yaml").write_text("profile: full\nsteps: 1000\n")
    monkeypatch.setattr(reproduce, "notebooks_dir", lambda *p: tmp_path.joinpath(*p))
    monkeypatch.setattr(reproduce, "results_dir", lambda *p: tmp_path.joinpath("results", *p))
    return tmp_path


def no_kernel(*args, **kwargs):
    raise AssertionError("a kernel was started although the parameters were invalid")


def run_dirs(demo, name="demo"):
    folder = demo / "results" / "quick" / name
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.exists() else []


def test_unknown_parameter_stops_before_any_kernel(demo, monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "_run_one", no_kernel)
    assert reproduce.main(["--only", "demo", "-p", "bogus=1"]) == 2
    err = capsys.readouterr().err
    assert "bogus" in err and "accepted: dims, profile, rate, steps" in err
    assert not run_dirs(demo)


@pytest.mark.parametrize("override, fragment", [
    ("steps=abc", "steps = 'abc' has the wrong type: expected a int like 10"),
    ("steps=1.5", "steps = 1.5 has the wrong type"),
    ("dims=3", "dims = 3 has the wrong type: expected a list of int"),
    ("dims=[2, x]", "dims[1] = 'x' has the wrong type"),
    ("steps=0", "steps = 0 is not allowed: it must be >= 1"),
    ("rate=0", "rate = 0.0 is not allowed: it must be in (0, 1]"),
    ("dims=[3]", "dims[0] = 3 is not allowed: it must be one of 2, 4, 8"),
    ("dims=[]", "dims = [] is not allowed: it must not be empty"),
    ("nonsense", "NAME=VALUE"),
    ("dims=[2, 4", "-p 'dims=[2, 4': the value is not valid YAML"),
    ("steps=!!python/object/apply:os.system ['true']", "not valid YAML"),
    ("profile=full", "choose the profile with --profile full"),
])
def test_wrong_values_are_refused_in_one_line(demo, monkeypatch, capsys, override, fragment):
    monkeypatch.setattr(reproduce, "_run_one", no_kernel)
    assert reproduce.main(["--only", "demo", "-p", override]) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_p_without_only_names_the_notebooks_that_have_it(demo, monkeypatch, capsys):
    make_notebook(demo, "other", params="profile = 'quick'  # profile\nseed = 0  # seed [>= 0]\n")
    monkeypatch.setattr(reproduce, "_run_one", no_kernel)
    assert reproduce.main(["-p", "steps=3"]) == 2
    err = capsys.readouterr().err
    assert "other has no parameter 'steps': add --only demo" in err


def test_list_prints_descriptions_and_rules(demo, capsys):
    assert reproduce.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "steps = 10" in out and "training steps [>= 1]" in out and "dimensions D [each in {2, 4, 8}; non-empty]" in out


def test_full_profile_and_overrides_are_merged_and_coerced(demo):
    nb = reproduce.discover()["demo"]
    params = reproduce.resolve_parameters(nb, "full", reproduce.parse_overrides(["rate=1", "dims=[8]"]))
    assert params == {"profile": "full", "steps": 1000, "rate": 1.0, "dims": [8]}
    assert isinstance(params["rate"], float)


def test_broken_full_profile_file_is_one_line(demo, capsys):
    (demo / "params" / "full" / "demo.yaml").write_text("steps: [1, 2\n")
    assert reproduce.main(["--only", "demo", "--profile", "full"]) == 2
    err = capsys.readouterr().err
    assert "demo.yaml: not valid YAML" in err and err.count("\n") == 1


def test_parameters_cell_must_be_unique_and_literal(tmp_path):
    path = make_notebook(tmp_path, params="profile = 'quick'\nsteps = 2 * 5\n")
    with pytest.raises(reproduce.ParameterError, match="not a literal"):
        reproduce.parameters_of(reproduce.NotebookFile("demo", path))


def test_unknown_notebook_is_an_error(demo, capsys):
    assert reproduce.main(["--only", "nope"]) == 2
    assert "available: demo" in capsys.readouterr().err


def test_unwritable_results_stop_before_any_kernel(demo, monkeypatch, capsys):
    """Finding 9 of the hostile-input probe: results/ not writable is an error up front, exit 2."""
    blocker = demo / "blocked"
    blocker.write_text("a file where results/ should be a folder")
    monkeypatch.setattr(reproduce, "results_dir", lambda *p: blocker.joinpath(*p))
    monkeypatch.setattr(reproduce, "_run_one", no_kernel)
    assert reproduce.main(["--only", "demo"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the run folders" in err and "make results/ writable" in err and err.count("\n") == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_stop_before_any_kernel(demo, monkeypatch, capsys):
    (demo / "results").mkdir()
    (demo / "results").chmod(0o500)
    monkeypatch.setattr(reproduce, "_run_one", no_kernel)
    try:
        assert reproduce.main(["--only", "demo"]) == 2
    finally:
        (demo / "results").chmod(0o700)
    assert "Permission denied" in capsys.readouterr().err


def test_strip_run_metadata():
    nb = {"metadata": {"papermill": {"duration": 1.0}, "widgets": {"state": {}},
                       "kernelspec": {"name": "python3", "display_name": "Python 3"}}, "cells": [
        {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "x = 1", "outputs": []},
        {"cell_type": "code", "execution_count": 7, "source": "x",
         "metadata": {"papermill": {"duration": 1}, "execution": {"iopub.status.busy": "t"}},
         "outputs": [{"output_type": "execute_result", "execution_count": 7, "data": {}, "metadata": {}},
                     {"output_type": "display_data", "metadata": {},
                      "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "x"}}}]}]}
    out = reproduce.strip_run_metadata(nb)
    assert "papermill" not in out["metadata"] and "widgets" not in out["metadata"] and len(out["cells"]) == 1
    assert out["metadata"]["kernelspec"]["display_name"] == "Python 3 (ipykernel)"
    assert out["cells"][0]["metadata"] == {} and out["cells"][0]["execution_count"] == 1
    assert [o["output_type"] for o in out["cells"][0]["outputs"]] == ["execute_result"]
    assert out["cells"][0]["outputs"][0]["execution_count"] == 1


def test_store_refuses_a_notebook_edited_during_the_run(demo):
    nb = reproduce.discover()["demo"]
    executed = demo / "executed.ipynb"
    executed.write_text(nb.path.read_text())
    make_notebook(demo, body="print('edited by someone else meanwhile')")
    before = nb.path.read_text()
    assert "changed while it ran" in reproduce._store(executed, nb)
    assert nb.path.read_text() == before


def test_each_run_has_its_own_folder_and_summary_accumulates(demo, capsys):
    """Finding 7: two runs with different parameters keep their own notebook, parameters and summary line."""
    assert reproduce.main(["--only", "demo", "-p", "steps=21"]) == 0
    assert reproduce.main(["--only", "demo", "-p", "steps=5"]) == 0
    first, second = run_dirs(demo)
    for folder, printed in ((first, "quick 42 0.5 6"), (second, "quick 10 0.5 6")):
        executed = json.loads((folder / "demo.ipynb").read_text())
        texts = ["".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", [])]
        assert printed in "".join(texts)
        assert (folder / "parameters.yaml").exists()
    assert "steps: 21" in (first / "parameters.yaml").read_text()
    summary = (demo / "results" / "quick" / "summary.md").read_text().splitlines()
    assert summary[0].startswith("| started (UTC)") and len(summary) == 4
    assert "steps=21" in summary[2] and "steps=5" in summary[3] and all("| ok |" in s for s in summary[2:])
    out = capsys.readouterr().out
    assert "Executing Cell" not in out and "Ending Cell" not in out and "Working directory" not in out
    assert "[IPKernelApp] WARNING" not in out and "Unable to parse" not in out


def test_failing_cell_reports_the_first_line_of_a_long_message(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("assert False, table")
    cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="D\n4    0.7\ndtype: float64",
                                           traceback=["\x1b[31mAssertionError\x1b[0m: D ..."])]
    nb.cells = [nbformat.v4.new_markdown_cell("x"), cell]
    nbformat.write(nb, tmp_path / "x.ipynb")
    assert reproduce.failing_cell(tmp_path / "x.ipynb") == "cell 1 (assert False, table): AssertionError: D ..."


def test_a_failing_notebook_prints_its_cell_error_and_path(demo, capsys):
    make_notebook(demo, body="x = 1\nraise RuntimeError('the model diverged at step 3')")
    assert reproduce.main(["--only", "demo"]) == 1
    captured = capsys.readouterr()
    err, out = captured.err, captured.out
    assert "demo failed: cell 2 (x = 1): RuntimeError: the model diverged at step 3" in err
    (folder,) = run_dirs(demo)
    assert f"executed notebook: {folder / 'demo.ipynb'}" in err
    assert "Traceback" not in out + err and "PapermillExecutionError" not in out + err
    assert "PapermillExecutionError" in (folder / "papermill.log").read_text()


RUNNER = """
import sys
from pathlib import Path
from otlib.report import reproduce
root = Path(sys.argv[1])
reproduce.notebooks_dir = lambda *p: root.joinpath(*p)
reproduce.results_dir = lambda *p: root.joinpath("results", *p)
sys.exit(reproduce.main(["--only", "demo"]))
"""


def test_sigkill_of_the_runner_takes_papermill_and_the_kernel_along(demo, tmp_path):
    """Finding 8: nothing keeps training after the runner is killed, and its private temporary folder
    (parameters, the kernel's connection file) goes at the next run."""
    make_notebook(demo, body="import os, time\nprint('kernel', os.getpid(), flush=True)\ntime.sleep(120)")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(demo)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    kernel = None
    deadline = time.monotonic() + 120
    for line in runner.stdout:
        if line.startswith("kernel "):
            kernel = int(line.split()[1])
            break
        assert time.monotonic() < deadline, "the kernel never started"
    assert kernel is not None
    family = reproduce._children(runner.pid)
    assert kernel in family and len(family) >= 2
    (private,) = tmp.glob("otlib-run-*")
    assert any(private.glob("*.json")), "the kernel's connection file lives in the private folder"
    runner.send_signal(signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 20
    while any(reproduce._pid_alive(p) and not _zombie(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not [p for p in family if reproduce._pid_alive(p) and not _zombie(p)], "papermill or the kernel survived"
    assert reproduce.clean_stale_temp(tmp) == [private] and not private.exists()


def test_sigterm_of_the_runner_reaps_and_removes_its_temporary_folder(demo, tmp_path):
    """Finding 8, the exits the runner can catch: nothing survives and nothing is left in the temp folder."""
    make_notebook(demo, body="import os, time\nprint('kernel', os.getpid(), flush=True)\ntime.sleep(120)")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(demo)], env=dict(os.environ, TMPDIR=str(tmp)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in runner.stdout:
        if line.startswith("kernel "):
            break
    family = reproduce._children(runner.pid)
    assert len(family) >= 2 and list(tmp.glob("otlib-run-*"))
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 128 + signal.SIGTERM
    assert not [p for p in family if reproduce._pid_alive(p) and not _zombie(p)], "papermill or the kernel survived"
    assert not list(tmp.glob("otlib-run-*")), "the private temporary folder was left behind"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def test_a_real_notebook_run_twice_gives_identical_figures_and_leaves_tracked_files_alone(tmp_path, monkeypatch):
    """w2_benchmark_baselines, small, run twice through the runner: byte-identical PDFs and PNGs in each run's
    own folder, and the committed figures untouched."""
    from otlib.core.paths import figures_dir, shared_dir

    if not (shared_dir("w2bench", "Mix3toMix10") / "2_v1.pt").exists() and not os.environ.get("OTLIB_DATA_DIR"):
        pytest.skip("needs the benchmark files: ../shared/w2bench/Mix3toMix10 or $OTLIB_DATA_DIR")
    monkeypatch.setattr(reproduce, "results_dir", lambda *p: tmp_path.joinpath("results", *p))
    committed = {p: p.read_bytes() for p in figures_dir("quick", "w2_benchmark_baselines").glob("*")}
    small = ["-p", "dims=[2, 4]", "-p", "seeds=1", "-p", "n_eval=1024"]
    for _ in range(2):
        assert reproduce.main(["--only", "w2_benchmark_baselines", *small]) == 0
    first, second = sorted(p for p in (tmp_path / "results" / "quick" / "w2_benchmark_baselines").iterdir())
    figures = sorted(p.name for p in (first / "figures").iterdir())
    assert {"pair_d2.pdf", "pair_d2.png", "baselines_against_dim.pdf"} <= set(figures)
    for name in figures:
        assert (first / "figures" / name).read_bytes() == (second / "figures" / name).read_bytes(), name
    assert {p: p.read_bytes() for p in figures_dir("quick", "w2_benchmark_baselines").glob("*")} == committed
