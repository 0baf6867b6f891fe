"""The static site of the executed notebooks (otlib.report.site): built from the committed notebooks with
nothing executed, every local link and anchor resolving, nothing loaded from outside, math as MathML, no
progress bars or stderr, and every saved table on the index next to the published values it reproduces."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from otlib.bench.cells import PUBLISHED_HD
from otlib.report import reproduce, site
from otlib.w2bench.metrics import PUBLISHED

pytest.importorskip("latex2mathml", reason="the site renders math with latex2mathml (pip install -e '.[peers]')")

NOTEBOOKS = reproduce.discover()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[site.Page]]:
    out = tmp_path_factory.mktemp("site")
    return out, site.build(out, "quick", verbose=False)


def _committed(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS[name].path, as_version=4)


def test_every_notebook_has_a_page_linked_from_the_index(built):
    out, pages = built
    assert sorted(p.name for p in pages) == sorted(NOTEBOOKS)
    index = (out / "index.html").read_text()
    for name in NOTEBOOKS:
        assert (out / f"{name}.html").stat().st_size > 10_000, name
        assert f"href='{name}.html'" in index, name


def test_links_and_anchors_resolve_and_nothing_loads_from_outside(built):
    out, _ = built
    assert site.check_links(out) == []
    for page in out.glob("*.html"):
        text = page.read_text()
        assert not re.search(r"<script[^>]*\bsrc=", text), f"{page.name} loads a script"
        assert not re.search(r"import\(\s*[\"']https?:|@import\s+url\(\s*[\"']?https?:", text), page.name


def test_check_links_finds_broken_links_and_remote_loads(tmp_path):
    (tmp_path / "a.html").write_text("<p id='here'>x</p><a href='a.html#here'>ok</a><a href='https://arxiv.org'>ok</a>"
                                     "<a href='b.html'>missing</a><a href='a.html#nowhere'>bad anchor</a>"
                                     "<img src='https://example.org/x.png'><link rel='stylesheet' href='//cdn/x.css'>")
    problems = site.check_links(tmp_path)
    assert len(problems) == 4, problems
    assert any("missing file" in p and "b.html" in p for p in problems)
    assert any("missing anchor" in p and "nowhere" in p for p in problems)
    assert sum("from outside the site" in p for p in problems) == 2


def test_pages_hide_stderr_and_progress_widgets(built):
    out, _ = built
    for page in out.glob("*.html"):
        text = page.read_text()
        assert not re.search(r"<div[^>]*data-mime-type=.application/vnd\.jupyter\.stderr", text), page.name
        assert "widget-view+json" not in text and "cpu_aot_loader" not in text, page.name


def test_clean_notebook_drops_stderr_and_widget_views():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("1", outputs=[
            nbformat.v4.new_output("stream", name="stderr", text="  3%|#   | 30/1000\n"),
            nbformat.v4.new_output("stream", name="stdout", text="kept\n"),
            nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"},
                                                        "text/plain": "HBox(...)"}),
        ]),
        nbformat.v4.new_markdown_cell("See [the table](w2_benchmark_hd.ipynb#table) and $x^2$."),
    ], metadata={"widgets": {"state": {}}})
    formulas: list[str] = []
    clean = site.clean_notebook(nb, formulas)
    assert [o.get("text") for o in clean.cells[0].outputs] == ["kept\n"]
    assert "widgets" not in clean.metadata and "widgets" in nb.metadata  # a copy
    assert "(w2_benchmark_hd.html#table)" in clean.cells[1].source
    assert len(formulas) == 1 and "<msup>" in formulas[0]


def test_markdown_math_leaves_code_and_prices_alone():
    formulas: list[str] = []
    text = "Inline $\\nabla f^*(y)$, display $$\\frac{a}{b}$$, code `$x$` and\n```\n$y$\n```\nprices \\$5 and \\$6."
    out = site.markdown_math(text, formulas)
    assert "`$x$`" in out and "```\n$y$\n```" in out and "\\$5 and \\$6" in out
    assert len(formulas) == 2 and 'display="inline"' in formulas[0] and 'display="block"' in formulas[1]
    assert "<mfrac>" in formulas[1]
    page = site.put_math(f"<p>{out}</p>", formulas)
    assert "OTLIBMATH" not in page and page.count("<math") == 2


def test_math_is_rendered_to_mathml_in_the_pages(built):
    out, _ = built
    text = (out / "w2_benchmark_baselines.html").read_text()
    assert text.count("<math") >= 5 and "<mfrac>" in text
    assert "\\mathbb" not in text.split("<main>", 1)[1].split("jp-CodeCell", 1)[0]  # the first markdown cell


def test_parse_table_reads_pandas_html():
    frame = pd.DataFrame({"identity": [32.7, 42.0], "linear": [14.1, 14.9]}, index=pd.Index([2, 4], name="D"))
    columns, rows = site.parse_table(frame.to_html())
    assert columns == ["identity", "linear"]
    assert rows == [(("2",), ["32.7", "14.1"]), (("4",), ["42.0", "14.9"])]
    multi = pd.DataFrame({"row": ["linear", "linear", "ENOT"], "D": [4, 16, 4], "ours": [14.8, 41.7, 1.75],
                          "published": [14.9, 41.6, 0.03]}).set_index(["row", "D"])
    columns, rows = site.parse_table(multi.to_html())  # "linear" spans two rows in pandas' HTML
    assert "rowspan" in multi.to_html() and columns == ["ours", "published"]
    assert [index for index, _ in rows] == [("linear", "4"), ("linear", "16"), ("ENOT", "4")]
    compared = site.comparison(site.TableOut("some_notebook", "published_ratio", "c", multi.to_html()))
    assert [(r["row"], r["D"], r["published"]) for r in compared] == [("linear", 4, 14.9), ("linear", 16, 41.6),
                                                                      ("ENOT", 4, 0.03)]
    assert math.isclose(compared[2]["ratio"], 1.75 / 0.03)
    wide = pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")]))
    assert site.parse_table(wide.to_html()) is None


def test_saved_table_names_follow_the_calls():
    source = 'nb.save_table(published.set_index(["row", "dim"]), "published_ratio", caption="x")\nnb.save_table(t, "b")'
    assert site.saved_table_names(source) == ["published_ratio", "b"]
    assert site.saved_table_names("%time x = 1") == []


def test_comparisons_use_the_published_homes():
    frame = pd.DataFrame({"identity": [33.0, 40.0], "linear": [14.1, 15.2]}, index=pd.Index([2, 4], name="D"))
    rows = site.comparison(site.TableOut("w2_benchmark_baselines", "baselines", "c", frame.to_html()))
    assert len(rows) == 4
    for r in rows:
        assert r["published"] == PUBLISHED[r["D"]][r["row"]]
        assert math.isclose(r["ratio"], r["ours"] / r["published"])
    hd = pd.DataFrame({"D=4": ["1.75 ± 0.05", "2.75 ± 0.02", "9.9 ± 1"], "D=16": [">100", "28.43 ± 0.26", "1 ± 0"]},
                      index=["ENOT", "W2OT NN: Regression & L-BFGS", "a row of our own"])
    rows = site.comparison(site.TableOut("w2_benchmark_hd", "l2_uvp", "c", hd.to_html()))
    by = {(r["row"], r["D"]): r for r in rows}
    assert set(by) == {("ENOT", 4), ("ENOT", 16), ("W2OT NN: Regression & L-BFGS", 4), ("W2OT NN: Regression & L-BFGS", 16)}
    assert by[("ENOT", 4)]["published"] == PUBLISHED_HD["ENOT"]["values"][4]
    assert math.isclose(by[("ENOT", 4)]["ratio"], 1.75 / PUBLISHED_HD["ENOT"]["values"][4])
    assert math.isnan(by[("ENOT", 16)]["ratio"])  # ">100": diverged, no ratio
    assert by[("W2OT NN: Regression & L-BFGS", 16)]["published"] == PUBLISHED_HD["W2OT best"]["values"][16]


def test_index_shows_every_saved_table_with_its_published_values(built):
    out, pages = built
    index = (out / "index.html").read_text()
    for name in NOTEBOOKS:
        nb = _committed(name)
        for cell in nb.cells:
            if cell.cell_type == "code":
                for table in site.saved_table_names(cell.source):
                    assert f"id='table-{name}-{table}'" in index, (name, table)
    tables = {(t.notebook, t.name): t for p in pages for t in p.tables}
    baselines = site.comparison(tables[("w2_benchmark_baselines", "baselines")])
    assert {r["row"] for r in baselines} == {"identity", "linear"} and len(baselines) >= 2 * 4
    for r in baselines:  # the committed run reproduces the baselines to within a few per cent
        assert 0.9 < r["ratio"] < 1.1, r
        assert f"<td>{site._fmt(r['published'])}</td><td class='near'>{site._fmt(r['ratio'])}</td>" in index
    hd = site.comparison(tables[("w2_benchmark_hd", "l2_uvp")])
    assert any(r["row"] == "ENOT" for r in hd) and all(r["published"] > 0 for r in hd)


def test_thumbnails_link_to_their_cells(built):
    out, pages = built
    index = (out / "index.html").read_text()
    figures = [f for p in pages for f in p.figures]
    assert len(figures) >= len(NOTEBOOKS)
    thumbs = re.findall(r"<a href='([^']+)'><img src='(thumbs/[^']+)'", index)
    assert len(thumbs) == len(figures)
    for href, src in thumbs:
        assert (out / src).exists() and "#cell-id=" in href
    from PIL import Image

    with Image.open(out / thumbs[0][1]) as image:
        assert image.width == site.THUMBNAIL_WIDTH
    assert "<figcaption>baselines_against_dim</figcaption>" in index  # the name the notebook saves it under


def test_full_profile_falls_back_on_the_quick_runs(tmp_path, monkeypatch):
    stored = tmp_path / "full"
    stored.mkdir()
    (stored / "w2_benchmark_baselines.ipynb").write_text(json.dumps({}))
    monkeypatch.setattr(site, "results_dir", lambda *parts: tmp_path.joinpath(*parts))
    chosen = site.sources("full")
    assert chosen["w2_benchmark_baselines"] == (stored / "w2_benchmark_baselines.ipynb", "full profile run")
    assert all(kind.startswith("quick run") for name, (_, kind) in chosen.items() if name != "w2_benchmark_baselines")
    with pytest.raises(ValueError, match="profile"):
        site.sources("medium")
