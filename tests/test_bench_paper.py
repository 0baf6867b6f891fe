"""Records of long runs (``python -m otlib.bench record / paper / accuracy``) at tiny budgets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from otlib.bench import paper

TINY = dict(seeds=2, hidden=(32, 32), max_steps=400, eval_every=200, chunk_size=100, n_eval=1024)


class _Interrupt(Exception):
    pass


def _interrupt_at(step: int):
    def log(message: str) -> None:
        if f"step {step}," in message and "L2-UVP" in message:
            raise _Interrupt(message)
    return log


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One uninterrupted record, and the same run interrupted after its first evaluation then resumed."""
    mp = pytest.MonkeyPatch()
    root = paper.shared_dir("w2bench", "Mix3toMix10")
    if not root.is_dir():
        pytest.skip(f"official W2 benchmark files not found at {root} (the read-only shared folder)")
    mp.setenv("OTLIB_DATA_DIR", str(root))
    tmp = tmp_path_factory.mktemp("records")
    whole = paper.run_record("ENOT", 2, **TINY, name="whole", folder=tmp / "records", checkpoint_folder=tmp / "ck1",
                             log=lambda m: None)
    with pytest.raises(_Interrupt):
        paper.run_record("ENOT", 2, **TINY, name="cut", folder=tmp / "records", checkpoint_folder=tmp / "ck2",
                         log=_interrupt_at(200))
    cut = json.loads((tmp / "records" / "cut.json").read_text())
    messages: list[str] = []
    resumed = paper.run_record("ENOT", 2, **TINY, name="cut", folder=tmp / "records", checkpoint_folder=tmp / "ck2",
                               log=messages.append)
    yield {"folder": tmp, "whole": whole, "cut": cut, "resumed": resumed, "messages": messages}
    mp.undo()


def test_a_record_holds_config_history_finals_and_provenance(runs):
    rec = json.loads((runs["folder"] / "records" / "whole.json").read_text())
    assert rec["status"] == "finished" and rec["stop_reason"] == "budget (400 steps)"
    assert rec["config"]["method"]["hidden"] == [32, 32] and rec["config"]["method"]["num_steps"] == 400
    assert [h["step"] for h in rec["history"]] == [200, 400]
    assert all(len(h["l2_uvp"]) == 2 and len(h["loss"]) == 2 for h in rec["history"])
    assert rec["history"][0]["wall_s"] < rec["history"][1]["wall_s"] == pytest.approx(rec["wall_s"], abs=1.0)
    assert rec["final"]["l2_uvp"] == rec["history"][-1]["l2_uvp"]
    assert rec["published"] == 0.02
    prov = rec["provenance"]
    assert prov["cores"] >= 1 and prov["jax"] and prov["flax"] and prov["optax"] and prov["cpu"]
    assert len(prov["runs"]) == 1 and prov["runs"][0]["to_step"] == 400


def test_an_interrupted_record_says_running_and_resumes_to_the_same_values(runs):
    assert runs["cut"]["status"] == "running" and runs["cut"]["steps"] == 200
    assert [h["step"] for h in runs["cut"]["history"]] == [200]
    assert any("resuming" in m and "step 200" in m for m in runs["messages"])
    resumed = runs["resumed"]
    assert resumed["status"] == "finished"
    assert [h["step"] for h in resumed["history"]] == [200, 400]
    assert [r["from_step"] for r in resumed["provenance"]["runs"]] == [0, 200]
    # the driver's resume draws the batches of an uninterrupted run
    assert resumed["final"]["l2_uvp"] == pytest.approx(runs["whole"]["final"]["l2_uvp"], rel=1e-4)


def test_a_finished_record_is_not_rerun(runs):
    messages: list[str] = []
    again = paper.run_record("ENOT", 2, **TINY, name="whole", folder=runs["folder"] / "records",
                             checkpoint_folder=runs["folder"] / "ck1", log=messages.append)
    assert again["status"] == "finished" and "nothing to do" in messages[0]


def test_the_paper_table_reads_the_records(runs, capsys):
    assert paper.main_paper(["--folder", str(runs["folder"] / "records")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["row", "D", "steps"] and len(lines) == 4
    cells = json.loads(lines[-1])["cells"]
    assert [set(c) for c in cells] == [{"row", "dim", "steps", "seeds", "wall_s", "l2_uvp", "published", "ratio"}] * 2
    whole = next(c for c in cells if c["wall_s"] == round(runs["whole"]["wall_s"], 1))
    mean = sum(runs["whole"]["final"]["l2_uvp"]) / 2
    assert whole["l2_uvp"] == pytest.approx(mean, abs=1e-4)
    assert whole["ratio"] == pytest.approx(mean / 0.02, rel=1e-3) and whole["steps"] == 400


def test_the_markdown_table_has_one_line_per_record_with_how_it_ended(runs, capsys):
    assert paper.main_paper(["--folder", str(runs["folder"] / "records"), "--markdown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 + 2 and lines[0].startswith("| row | D | budget")
    whole = next(line for line in lines if "`whole`" in line)
    cells = [c.strip() for c in whole.strip("|").split("|")]
    mean = sum(runs["whole"]["final"]["l2_uvp"]) / 2
    assert cells[:5] == ["ENOT", "2", "0.4k", "0.4k (budget)", "2"]
    assert float(cells[6].split(" ± ")[0]) == pytest.approx(mean, abs=1e-3) and cells[7] == "0.02"


def test_the_readme_table_is_the_committed_records():
    """The README's table of long runs is ``python -m otlib.bench paper --markdown`` of records/: regenerate
    it there when a record is added or finishes."""
    readme = (paper.ROOT / "README.md").read_text()
    begin, end = "<!-- records: python -m otlib.bench paper --markdown -->\n", "<!-- end of records -->"
    assert begin in readme and end in readme, "the README lost its records table markers"
    table = readme.split(begin, 1)[1].split(end, 1)[0]
    assert table == paper.markdown_table(paper.load_records()), (
        "README.md's records table differs from records/*.json: paste `python -m otlib.bench paper --markdown`")


def test_the_time_to_accuracy_figure_draws_a_curve_and_the_published_line(runs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = paper.plot_time_to_accuracy(paper.load_records(runs["folder"] / "records"))
    (ax,) = fig.axes
    assert len(ax.lines) == 3 and ax.get_xscale() == ax.get_yscale() == "log"  # two records, one published line
    flat = [tuple(line.get_ydata()) for line in ax.lines if len(set(line.get_ydata())) == 1]
    assert flat == [(0.02, 0.02)]
    (legend,) = fig.legends  # one legend under the panels, covering no curve
    assert [t.get_text() for t in legend.get_texts()][-1].startswith("published value")
    plt.close(fig)
    fig = paper.plot_time_to_accuracy(paper.load_records(runs["folder"] / "records"), clock="cpu_s")
    assert fig.axes[0].get_xlabel().startswith("CPU seconds") and len(fig.axes[0].lines) == 3
    plt.close(fig)
    with pytest.raises(ValueError, match="clock"):
        paper.plot_time_to_accuracy([], clock="steps")


def test_a_record_with_other_tau_and_lam_is_its_own_row_in_tables_and_figure(runs, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    whole = json.loads((runs["folder"] / "records" / "whole.json").read_text())
    variant = json.loads(json.dumps(whole))
    variant["name"] = "variant"
    variant["config"]["method"].update(tau=0.99, lam=1.0)
    for record in (whole, variant):
        (tmp_path / f"{record['name']}.json").write_text(json.dumps(record))
    records = paper.load_records(tmp_path)
    assert [paper.row_label(r) for r in records] == ["ENOT", "ENOT (τ = 0.99, λ = 1)"]
    assert [c["row"] for c in paper.paper_cells(records)] == ["ENOT", "ENOT (τ = 0.99, λ = 1)"]
    assert "| ENOT (τ = 0.99, λ = 1) | 2 |" in paper.markdown_table(records)
    fig = paper.plot_time_to_accuracy(records)
    curves = [line for line in fig.axes[0].lines if len(set(line.get_ydata())) > 1]
    flat = [line for line in fig.axes[0].lines if len(set(line.get_ydata())) == 1]
    assert len({line.get_color() for line in curves}) == 2
    assert len(flat) == 1  # the variant shares ENOT's published line
    assert "ENOT (τ = 0.99, λ = 1)" in [t.get_text() for t in fig.legends[0].get_texts()]
    plt.close(fig)
    assert paper.row_label({"row": paper.PEER_ROW, "config": {"method": {"tau": 0.99}}}) == paper.PEER_ROW


def test_the_notebook_table_has_one_row_per_record(runs):
    table = paper.paper_table(paper.load_records(runs["folder"] / "records"))
    assert len(table) == 2 and set(table["published (%)"]) == {0.02} and set(table["width"]) == {"32x32"}
    assert table["status"].str.startswith("finished").all()
    assert paper.paper_table([]).empty


def test_a_record_stops_at_the_target_and_restarts_without_its_checkpoint(runs, tmp_path):
    kwargs = dict(TINY, name="loose", folder=tmp_path, checkpoint_folder=tmp_path / "ck", target_factor=1e5)
    rec = paper.run_record("ENOT", 2, **kwargs, log=lambda m: None)
    assert rec["status"] == "stopped" and rec["stop_reason"].startswith("target reached") and rec["steps"] == 200
    # the same record, its checkpoint gone and its status running again: it says it restarts
    data = json.loads((tmp_path / "loose.json").read_text())
    data["status"] = "running"
    (tmp_path / "loose.json").write_text(json.dumps(data))
    (tmp_path / "ck" / "checkpoint.npz").unlink()
    messages: list[str] = []
    rec = paper.run_record("ENOT", 2, **kwargs, log=messages.append)
    assert "restarting from step 0" in messages[0] and rec["steps"] == 200
    assert [r["from_step"] for r in rec["provenance"]["runs"]] == [0]


def test_unknown_rows_and_misplaced_widths_are_refused():
    with pytest.raises(ValueError, match="unknown row"):
        paper._build("W2OT NN: Cycle", None, steps=10, hidden=None, n_eval=16)
    with pytest.raises(ValueError, match="ENOT only"):
        paper._build(paper.RECORD_ROWS[1], None, steps=10, hidden=(8,), n_eval=16)
    with pytest.raises(ValueError, match="--tau/--lam apply to otlib's ENOT only"):
        paper._build(paper.RECORD_ROWS[1], None, steps=10, hidden=None, n_eval=16, tau=0.99, lam=1.0)
    with pytest.raises(ValueError, match="ENOT only"):
        paper.run_record(paper.PEER_ROW, 2, tau=0.99, folder=Path("/nonexistent"))


def test_tau_and_lam_replace_the_papers_in_the_enot_record_config(w2bench_data):
    from otlib.w2bench import hd

    method = paper._build("ENOT", hd(2), steps=10, hidden=None, n_eval=16, tau=0.99, lam=1.0)
    assert (method.config.tau, method.config.lam, method.config.hidden) == (0.99, 1.0, (512, 512, 512))
    method = paper._build("ENOT", hd(2), steps=10, hidden=(8,), n_eval=16)
    assert (method.config.tau, method.config.lam, method.config.hidden) == (0.9, 0.3, (8,))


def test_published_values_follow_the_rows():
    assert paper.published_value("ENOT", 16) == 0.24
    assert paper.published_value("W2OT NN: Regression & L-BFGS", 8) == 0.60
    assert paper.record_name("W2OT NN: Regression & L-BFGS", 4) == "w2ot_nn_regression_l_bfgs_D4"


def test_record_rows_are_table_rows():
    from otlib.bench import hd_table

    assert set(paper.RECORD_ROWS) - {paper.PEER_ROW} <= set(hd_table.ROWS) and paper.PEER_ROW == hd_table.PEER_ROW


def test_accuracy_race_reaches_a_loose_target(w2bench_data):
    out = paper.accuracy_race(2, target=60.0, time_cap=60.0, steps=2000, stretch=100, n_eval=1024,
                              log=lambda m: None)
    assert out["otlib_s"] is not None and 0 < out["otlib_s"] <= 60.0 and out["otlib_l2_uvp"] <= 60.0
    if out["peer_run"]:
        assert out["peer_l2_uvp"] is not None and math.isfinite(out["peer_l2_uvp"])
        assert (out["peer_s"] is None) == (out["ratio"] is None)


def test_the_peer_record_resumes_its_ott_jax_states(w2bench_data, tmp_path):
    pytest.importorskip("ott.neural.methods.expectile_neural_dual")
    kwargs = dict(seeds=1, max_steps=40, eval_every=20, n_eval=1024, folder=tmp_path,
                  checkpoint_folder=tmp_path / "ck")
    whole = paper.run_record(paper.PEER_ROW, 2, **kwargs, name="peer_whole", log=lambda m: None)
    assert whole["status"] == "finished" and [h["step"] for h in whole["history"]] == [20, 40]
    with pytest.raises(_Interrupt):
        paper.run_record(paper.PEER_ROW, 2, **dict(kwargs, checkpoint_folder=tmp_path / "ck2"), name="peer_cut",
                         log=_interrupt_at(20))
    messages: list[str] = []
    resumed = paper.run_record(paper.PEER_ROW, 2, **dict(kwargs, checkpoint_folder=tmp_path / "ck2"),
                               name="peer_cut", log=messages.append)
    assert any("resuming" in m and "step 20" in m for m in messages)
    assert [h["step"] for h in resumed["history"]] == [20, 40]
    # restored states and the same batch stream: the values of an uninterrupted run
    assert resumed["final"]["l2_uvp"] == pytest.approx(whole["final"]["l2_uvp"], rel=1e-3)
    with pytest.raises(ValueError, match="even"):
        paper.run_record(paper.PEER_ROW, 2, **dict(kwargs, eval_every=21), name="odd", log=lambda m: None)
