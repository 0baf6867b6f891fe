"""What every committed notebook must be: runnable by Papermill, checkable by nbval, and honest about its profile.

nbval re-executes the notebooks themselves (collected from notebooks/ by ``make test``); these tests
check their form: exactly one ``parameters`` cell of literals in the quick profile, a full profile file
that names only real parameters, stored outputs, no Papermill run metadata or widget state, JupyterLab's
kernelspec and JSON layout (so opening a notebook does not modify it), and ``start`` called with the
notebook's own name.
"""

from __future__ import annotations

import json
import os
import re

import nbformat
import pytest

from otlib.report import reproduce

NOTEBOOKS = reproduce.discover()


def test_there_are_notebooks():
    assert "w2_benchmark_baselines" in NOTEBOOKS


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_form(name):
    nb = NOTEBOOKS[name]
    data = json.loads(nb.path.read_text())
    assert data["metadata"]["kernelspec"] == reproduce.KERNELSPEC, "JupyterLab rewrites any other kernelspec on open"
    assert "papermill" not in data["metadata"], "strip Papermill run metadata (python -m otlib.reproduce --store)"
    assert "widgets" not in data["metadata"], "no widget state in committed notebooks"
    text = nb.path.read_text()
    assert text == reproduce.dump_notebook(data), "Jupyter's JSON layout (indent 1, sorted keys, UTF-8, newline)"
    assert text == nbformat.writes(nbformat.reads(text, as_version=nbformat.NO_CONVERT)) + "\n", \
        "saving the notebook unchanged from JupyterLab (nbformat) must give the same bytes"
    cells = data["cells"]
    assert not any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in cells)
    assert not any("papermill" in c.get("metadata", {}) for c in cells)
    defaults = reproduce.parameters_of(nb)  # exactly one cell of literals, or ParameterError
    assert defaults.get("profile") == "quick", "commit notebooks with their quick parameters"
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "every code cell carries the count of its quick run"
    assert any(c.get("outputs") for c in code), "committed notebooks carry the outputs of their quick run"
    source = "\n".join("".join(c["source"]) for c in code)
    assert "NBVAL_" not in source, "use nbval's cell tags (nbval-ignore-output), not comments the reader sees"
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for c in code for o in c.get("outputs", [])), "no widget outputs in committed notebooks"
    assert re.search(rf"start\(\s*['\"]{name}['\"]", source), f"the notebook must call otlib.report.notebook.start({name!r}, ...)"
    assert re.search(r"^\s*assert\b", source, re.MULTILINE), "robust results are asserted inside the notebook"


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_full_profile_names_real_parameters(name):
    params = reproduce.resolve_parameters(NOTEBOOKS[name], "full", {})
    assert params["profile"] == "full"


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="the canary speaks for CI runs only")
def test_canary_ci_runs_the_quick_profile_on_cpu():
    """CI must run nbval in the quick profile on the CPU: every notebook's ``start`` raises otherwise."""
    assert os.environ.get("OTLIB_PROFILE") == "quick"
    assert os.environ.get("JAX_PLATFORMS") == "cpu"
    import jax

    assert jax.default_backend() == "cpu"
