"""Notebook parameters: the rules written in each ``parameters`` cell, checked the same way by the runner and by
the validation cell, and refused in one line (also when Papermill is called directly, bypassing the runner)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from otlib.report import parameters, reproduce
from otlib.report.parameters import ParameterError, read_cell
from otlib.w2bench.files import DIMS

NOTEBOOKS = reproduce.discover()

CELL = """profile = "quick"  # the profile [in {"quick", "full"}]
steps = 100  # training steps [≥ 1]
tau = 0.9  # expectile [in (0, 1)]
lam = 0.5  # weight [in [0, 1]]
dims = [2, 4]  # dimensions [each in {2, 4, 8}; non-empty]
widths = [
    64, 64]  # hidden widths [each >= 1]
solver = "lbfgs"  # conjugate solver [in otlib.ot.conjugate.SOLVERS]
flag = True  # a switch
note = "x [y]"  # free text, brackets [not] rules here
"""


def spec():
    return read_cell(CELL, "demo")


def test_cell_is_read_with_descriptions_and_rules():
    s = spec()
    assert s["steps"].default == 100 and s["steps"].description == "training steps" and s["steps"].rules == "≥ 1"
    assert s["widths"].default == [64, 64] and s["widths"].rules == "each >= 1"
    assert s["lam"].rules == "in [0, 1]" and s["flag"].rules == ""
    assert s["note"].description == "free text, brackets [not] rules here" and s["note"].rules == ""


@pytest.mark.parametrize("name, value, expected", [
    ("steps", 1, 1), ("tau", 0.5, 0.5), ("lam", 0, 0.0), ("lam", 1, 1.0), ("dims", [8], [8]),
    ("solver", "adam", "adam"), ("flag", False, False), ("profile", "full", "full"), ("dims", "[2, 8]", [2, 8])])
def test_good_values_pass_converted(name, value, expected):
    out = spec()[name].check(value, "demo")
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("name, value, message", [
    ("steps", 0, "demo: parameter steps = 0 is not allowed: it must be ≥ 1"),
    ("steps", -5, "steps = -5 is not allowed: it must be ≥ 1"),
    ("steps", 2.5, "steps = 2.5 has the wrong type: expected a int like 100, got a float"),
    ("steps", True, "steps = True has the wrong type"),
    ("tau", 1.0, "tau = 1.0 is not allowed: it must be in (0, 1)"),
    ("tau", float("nan"), "tau = nan is not allowed"),
    ("lam", 1.5, "lam = 1.5 is not allowed: it must be in [0, 1]"),
    ("dims", 4, "dims = 4 has the wrong type: expected a list of int like [2, 4], got a int"),
    ("dims", [3], "dims[0] = 3 is not allowed: it must be one of 2, 4, 8"),
    ("dims", [], "dims = [] is not allowed: it must not be empty"),
    ("dims", "[3]", "dims[0] = 3 is not allowed"),
    ("dims", "[2, x]", "dims = '[2, x]' has the wrong type"),
    ("widths", [64, 0], "widths[1] = 0 is not allowed: it must be >= 1"),
    ("solver", "newton", "solver = 'newton' is not allowed: it must be one of 'lbfgs'"),
    ("profile", "fast", "profile = 'fast' is not allowed: it must be one of \"quick\", \"full\""),
])
def test_bad_values_are_one_line_naming_the_parameter(name, value, message):
    with pytest.raises(ParameterError) as info:
        spec()[name].check(value, "demo")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_names_and_bad_rules_are_refused():
    with pytest.raises(ParameterError, match="unknown parameter 'stepz'; accepted: dims, flag"):
        parameters.check_values({"stepz": 1}, spec(), "demo")
    with pytest.raises(ParameterError, match="unknown rule 'positive'"):
        read_cell("steps = 1  # steps [positive]\n")
    with pytest.raises(ParameterError, match="only `name = literal` lines"):
        read_cell("import os\n")


def test_ipython_shows_a_parameter_error_as_one_line():
    err = ParameterError("demo: parameter dims = 4 has the wrong type")
    (line,) = err._render_traceback_()
    assert "ParameterError" in line and "dims = 4" in line


def test_check_namespace_converts_in_place_and_remembers(monkeypatch, tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(CELL)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "demo.ipynb")
    monkeypatch.setattr(parameters, "notebooks_dir", lambda *p: tmp_path.joinpath(*p))
    namespace = {**{n: p.default for n, p in spec().items()}, "lam": 1}
    parameters.check_namespace("demo", namespace)
    assert namespace["lam"] == 1.0 and isinstance(namespace["lam"], float)
    assert parameters.last_checked("demo")["lam"] == 1.0
    namespace["dims"] = [3]
    with pytest.raises(ParameterError, match=r"dims\[0\] = 3"):
        parameters.check_namespace("demo", namespace)


# --- every notebook ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_every_parameter_is_documented_and_its_defaults_pass(name):
    nb = NOTEBOOKS[name]
    s = reproduce.spec_of(nb)
    undocumented = [n for n, p in s.items() if not p.description]
    assert not undocumented, f"{name}: describe {undocumented} in a trailing comment of the parameters cell"
    assert s["profile"].rules.replace("'", '"') == 'in {"quick", "full"}'
    reproduce.resolve_parameters(nb, "quick", {})
    if nb.full_params.exists():
        reproduce.resolve_parameters(nb, "full", {})


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_parameter_lines_have_one_equals_sign(name):
    """Papermill reads the cell too (its parameter listing) and skips lines with a second '=': rules say ≥."""
    source = parameters.parameters_cell_source(json.loads(NOTEBOOKS[name].path.read_text()), name)
    assert [line for line in source.splitlines() if line.count("=") > 1] == []


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_the_validation_cell_follows_the_parameters_cell(name):
    cells = json.loads(NOTEBOOKS[name].path.read_text())["cells"]
    (i,) = [k for k, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    source = "".join(cells[i + 1]["source"])
    assert f'check_namespace("{name}", globals())' in source, f"{name}: the cell after `parameters` must check them"


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_every_notebook_refuses_wrong_values(name):
    """Each parameter with rules refuses a value that breaks them, naming it (types: every parameter)."""
    nb = NOTEBOOKS[name]
    for pname, p in reproduce.spec_of(nb).items():
        if pname == "profile":
            continue
        wrong = {bool: "yes", int: "many", float: "high", str: 3, list: 4, dict: 5}[type(p.default)]
        with pytest.raises(ParameterError, match=rf"parameter {pname} = "):
            reproduce.resolve_parameters(nb, "quick", {pname: wrong})
        if ("≥ 1" in p.rules or ">= 1" in p.rules) and not p.rules.startswith("each"):
            with pytest.raises(ParameterError, match=rf"{pname} = 0 is not allowed"):
                reproduce.resolve_parameters(nb, "quick", {pname: 0})


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_benchmark_dimensions_are_the_benchmarks(name):
    """Where a parameter lists benchmark dimensions, its allowed set is exactly the benchmark's D."""
    for p in reproduce.spec_of(NOTEBOOKS[name]).values():
        if "{2, 4, 8, 16" in p.rules:
            assert p.rules.startswith("each in {" + ", ".join(map(str, DIMS)) + "}")
            with pytest.raises(ParameterError, match=rf"{p.name}\[0\] = 3 is not allowed"):
                reproduce.resolve_parameters(NOTEBOOKS[name], "quick", {p.name: [3]})


@pytest.mark.parametrize("override, fragment", [("dims", "4"), ("seeds", "0"), ("dims", "[3]")])
def test_papermill_without_the_runner_stops_in_the_validation_cell(tmp_path, override, fragment):
    """``papermill notebooks/w2_benchmark_baselines.ipynb out.ipynb -p dims 4`` fails in the cell after
    ``parameters`` with one line naming the parameter, before anything is imported or trained."""
    out = tmp_path / "out.ipynb"
    proc = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOKS["w2_benchmark_baselines"].path),
                           str(out), "-p", override, fragment, "-k", "python3", "--no-progress-bar",
                           "--cwd", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    cells = [c for c in json.loads(out.read_text())["cells"]
             if "papermill-error-cell-tag" not in c["metadata"].get("tags", [])]
    (failed,) = [(i, o) for i, c in enumerate(cells) for o in c.get("outputs", []) if o["output_type"] == "error"]
    index, error = failed
    assert "check_namespace" in "".join(cells[index]["source"])
    assert error["ename"] == "ParameterError" and f"parameter {override}" in error["evalue"]
    if fragment == "[3]":  # Papermill's -p passes "[3]" as text; the checker reads it as the list it means
        assert "parameter dims[0] = 3 is not allowed: it must be one of 2, 4, 8" in error["evalue"]
    assert len(error["traceback"]) == 1 and "\n" not in error["traceback"][0]


@pytest.mark.parametrize("name, override, fragment", [
    ("w2_benchmark_baselines", "seeds=0", "parameter seeds = 0 is not allowed: it must be ≥ 1"),
    ("w2_benchmark_baselines", "dims=[3]", "parameter dims[0] = 3 is not allowed: it must be one of 2, 4, 8, 16"),
    ("w2_benchmark_baselines", "dims=4", "parameter dims = 4 has the wrong type: expected a list of int"),
    ("w2_benchmark_hd", "enot_steps=-5", "parameter enot_steps = -5 is not allowed: it must be ≥ 1"),
    ("w2_benchmark_hd", "profile=full", "choose the profile with --profile full"),
])
def test_the_runner_refuses_before_any_kernel(monkeypatch, capsys, name, override, fragment):
    def no_kernel(*args, **kwargs):
        raise AssertionError("a kernel was started")
    monkeypatch.setattr(reproduce, "_run_one", no_kernel)
    assert reproduce.main(["--only", name, "-p", override]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_profile_full_in_the_notebook_selects_the_full_profile(monkeypatch, tmp_path, capsys):
    """``papermill ... -p profile full`` gets the full profile's values, like the runner's --profile full."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(CELL)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "demo.ipynb")
    (tmp_path / "params" / "full").mkdir(parents=True)
    (tmp_path / "params" / "full" / "demo.yaml").write_text("profile: full\nsteps: 5000\ntau: 0.95\n")
    monkeypatch.setattr(parameters, "notebooks_dir", lambda *p: tmp_path.joinpath(*p))
    namespace = {**{n: p.default for n, p in spec().items()}, "profile": "full", "tau": 0.8}
    parameters.check_namespace("demo", namespace)
    assert namespace["steps"] == 5000 and namespace["tau"] == 0.8  # an explicit value is kept
    assert "1 parameters from notebooks/params/full/demo.yaml" in capsys.readouterr().out
