"""The notebook runner: parameter validation before any kernel, metadata stripping, a real Papermill run."""

from __future__ import annotations

import json

import nbformat
import pytest

from otlib.report import reproduce


def make_notebook(folder, name="demo", params="profile = 'quick'\nsteps = 10\nrate = 0.5\ndims = [2, 4]\n"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# demo"), cell,
                nbformat.v4.new_code_cell("print(profile, steps * 2, rate, sum(dims))")]
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


def test_unknown_parameter_stops_before_any_kernel(demo, monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "_run_one", no_kernel)
    assert reproduce.main(["--only", "demo", "-p", "bogus=1"]) != 0
    err = capsys.readouterr().err
    assert "bogus" in err and "accepted: dims, profile, rate, steps" in err


@pytest.mark.parametrize("override, fragment", [("steps=abc", "'steps' expects a int"),
                                                 ("steps=1.5", "'steps' expects a int"),
                                                 ("dims=3", "'dims' expects a list"),
                                                 ("dims=[2, x]", "'dims[1]' expects a int"),
                                                 ("nonsense", "NAME=VALUE")])
def test_wrong_types_are_refused(demo, monkeypatch, capsys, override, fragment):
    monkeypatch.setattr(reproduce, "_run_one", no_kernel)
    assert reproduce.main(["--only", "demo", "-p", override]) == 2
    assert fragment in capsys.readouterr().err


def test_full_profile_and_overrides_are_merged_and_coerced(demo):
    nb = reproduce.discover()["demo"]
    params = reproduce.resolve_parameters(nb, "full", reproduce.parse_overrides(["rate=1", "dims=[8]"]))
    assert params == {"profile": "full", "steps": 1000, "rate": 1.0, "dims": [8]}
    assert isinstance(params["rate"], float)


def test_parameters_cell_must_be_unique_and_literal(tmp_path):
    path = make_notebook(tmp_path, params="profile = 'quick'\nsteps = 2 * 5\n")
    with pytest.raises(reproduce.ParameterError, match="not a literal"):
        reproduce.parameters_of(reproduce.Notebook("demo", path))


def test_unknown_notebook_is_an_error(demo, capsys):
    assert reproduce.main(["--only", "nope"]) == 2
    assert "available: demo" in capsys.readouterr().err


def test_strip_run_metadata():
    nb = {"metadata": {"papermill": {"duration": 1.0}}, "cells": [
        {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": "x = 1", "outputs": []},
        {"cell_type": "code", "execution_count": 7, "source": "x",
         "metadata": {"papermill": {"duration": 1}, "execution": {"iopub.status.busy": "t"}},
         "outputs": [{"output_type": "execute_result", "execution_count": 7, "data": {}, "metadata": {}}]}]}
    out = reproduce.strip_run_metadata(nb)
    assert "papermill" not in out["metadata"] and len(out["cells"]) == 1
    assert out["cells"][0]["metadata"] == {} and out["cells"][0]["execution_count"] == 1
    assert out["cells"][0]["outputs"][0]["execution_count"] == 1


def test_papermill_run_writes_results_and_summary(demo, capsys):
    assert reproduce.main(["--only", "demo", "-p", "steps=21"]) == 0
    executed = json.loads((demo / "results" / "quick" / "demo.ipynb").read_text())
    texts = [o.get("text", "") for c in executed["cells"] for o in c.get("outputs", [])]
    printed = "".join("".join(t) if isinstance(t, list) else t for t in texts)
    assert "quick 42 0.5 6" in printed
    summary = (demo / "results" / "quick" / "summary.md").read_text()
    assert "| demo" in summary and "| ok" in summary
