"""``python -m otlib.bench keep-run``: a finished full-profile run kept as a record and figures."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from otlib.bench import full_runs


def _fake_run(folder, *, profile="full", exception=None, error=False):
    folder.mkdir(parents=True)
    cells = [{"cell_type": "code", "outputs": [{"output_type": "error", "ename": "ValueError"}] if error else []}]
    meta = {"papermill": {"start_time": "2026-12-07T07:00:00+00:00", "end_time": "2026-12-07T08:00:00+00:00",
                          "duration": 3600.25, "exception": exception}}
    (folder / "nb.ipynb").write_text(json.dumps({"cells": cells, "metadata": meta}))
    (folder / "parameters.yaml").write_text(yaml.safe_dump({"profile": profile, "steps": 90001}))
    pd.DataFrame({"ours": [21.15, 5.2], "published": [21.14, None]}, index=["square", "moon"]).to_csv(
        folder / "distances.csv")
    (folder / "figures").mkdir()
    (folder / "figures" / "map.png").write_bytes(b"\x89PNG fake")
    (folder / "figures" / "map.pdf").write_bytes(b"%PDF fake")
    return folder


@pytest.fixture
def places(tmp_path, monkeypatch):
    monkeypatch.setattr(full_runs, "records_dir", lambda: tmp_path / "records")
    monkeypatch.setattr(full_runs, "figures_dir", lambda *parts: tmp_path.joinpath("figures", *parts))
    (tmp_path / "records").mkdir()
    return tmp_path


def test_a_full_run_is_kept_and_read_back(places):
    run = _fake_run(places / "results" / "full" / "nb" / "20261207-070000-abcd")
    path = full_runs.keep_run("nb", run)
    record = json.loads(path.read_text())
    assert path == places / "records" / "full" / "nb.json" and record["wall_s"] == 3600.2 and record["parameters"]["steps"] == 90001
    assert record["provenance"]["cores"] >= 1 and record["provenance"]["jax"]
    assert sorted(p.name for p in (places / "figures" / "full" / "nb").iterdir()) == ["map.pdf", "map.png"]
    assert (places / "figures" / "full" / "nb" / "map.png").read_bytes() == b"\x89PNG fake"
    table = full_runs.load_full_run("nb")["tables"]["distances"]
    assert table.loc["square", "ours"] == 21.15 and pd.isna(table.loc["moon", "published"])
    assert full_runs.load_full_run("other") is None
    # The HD table's records, in the folder above, never include a notebook's record.
    from otlib.bench import paper
    assert paper.load_records(places / "records") == []


@pytest.mark.parametrize("kind", ["quick", "exception", "error cell"])
def test_a_failed_or_quick_run_is_refused(places, kind):
    run = _fake_run(places / "run", profile="quick" if kind == "quick" else "full",
                    exception=True if kind == "exception" else None, error=kind == "error cell")
    with pytest.raises(full_runs.RunNotUsable, match="quick" if kind == "quick" else "did not finish cleanly"):
        full_runs.keep_run("nb", run)
    assert not (places / "records" / "full" / "nb.json").exists()


def test_no_run_says_how_to_make_one(places, capsys, monkeypatch):
    monkeypatch.setattr(full_runs, "results_dir", lambda *parts: places.joinpath("results", *parts))
    assert full_runs.main(["nb"]) == 2
    assert "python -m otlib.reproduce --profile full --only nb" in capsys.readouterr().err


def test_a_run_kept_in_parts_keeps_each_part_beside_the_others(places):
    for part in ("rings", "swiss"):
        run = _fake_run(places / "results" / part)
        path = full_runs.keep_run("nb", run, part=part)
        assert path == places / "records" / "full" / "nb" / f"{part}.json"
        assert json.loads(path.read_text())["part"] == part
        assert (places / "figures" / "full" / "nb" / part / "map.png").exists()
    assert full_runs.kept_parts("nb") == ["rings", "swiss"] and full_runs.kept_parts("other") == []
    assert full_runs.load_full_run("nb", "swiss")["tables"]["distances"].loc["square", "ours"] == 21.15
    assert full_runs.load_full_run("nb") is None  # a whole-run record is another file


def test_a_part_that_cannot_name_a_file_is_refused(places, capsys):
    run = _fake_run(places / "run")
    assert full_runs.main(["nb", "--run", str(run), "--part", "../x"]) == 2
    assert "letters, digits" in capsys.readouterr().err
    assert not (places / "records" / "full").exists()
