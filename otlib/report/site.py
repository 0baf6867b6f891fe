"""A static HTML site of the executed notebooks: ``python -m otlib.report.site [--profile quick|full] [--out DIR]``.

Each notebook becomes one page (nbconvert's ``HTMLExporter``, JupyterLab template) with its stored
outputs; nothing is executed. The quick profile reads the committed notebooks (``notebooks/``, the quick
runs); the full profile reads ``results/full/<name>.ipynb`` where a full run is stored and falls back on
the committed quick run, saying so on the page's entry. The index page lists the notebooks, puts every
reproduced table (each ``save_table`` output) next to the papers' published values with the ratio
ours / published, and shows every figure as a thumbnail that links to its place in its notebook.

The pages work offline: math in Markdown cells is rendered to MathML at build time (``latex2mathml``;
browsers draw MathML natively), images are embedded, and the template loads no script or style from
outside (no require.js, MathJax, Mermaid or widget manager). Progress bars and stderr are dropped:
stream outputs on stderr, and widget views (tqdm's and the explorer's) whose text fallback is all a
static page could show.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import html
import io
import math
import re
import shutil
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Callable, Optional

from otlib.core.paths import ROOT, notebooks_dir, results_dir

__all__ = ["Page", "TableOut", "FigureOut", "build", "check_links", "clean_notebook", "comparison", "main",
           "markdown_math", "parse_table", "put_math", "published_hd", "published_baselines", "saved_table_names", "sources",
           "tables_and_figures"]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
THUMBNAIL_WIDTH = 260

_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block body_header -%}
{{ super() }}
<nav class="otlib-nav"><a href="index.html">&larr; all notebooks</a></nav>
{%- endblock body_header -%}
"""
"""JupyterLab's template without the blocks that load scripts from a CDN, and with a link to the index."""


# ----------------------------------------------------------------------------------------------------
# Published values (imported from their homes, never copied here).

def published_hd() -> dict[str, dict]:
    """The HD benchmark's published forward L2-UVP (%) by row: ``{row: {"source": str, "values": {D: v}}}``."""
    from otlib.bench.cells import PUBLISHED_HD

    return PUBLISHED_HD


def published_baselines() -> dict[int, dict[str, float]]:
    """Korotin et al. (2021)'s identity and linear rows by D: ``{D: {"identity": v, "linear": v}}``."""
    from otlib.w2bench.metrics import PUBLISHED

    return PUBLISHED


# ----------------------------------------------------------------------------------------------------
# Notebook sources and cleaning.

def sources(profile: str) -> dict[str, tuple[Path, str]]:
    """``{name: (path of the executed notebook, what it is)}`` for ``profile`` (module docstring)."""
    if profile not in ("quick", "full"):
        raise ValueError(f"profile must be 'quick' or 'full', got {profile!r}")
    out = {}
    for path in sorted(notebooks_dir().glob("*.ipynb")):
        full = results_dir("full", path.name)
        if profile == "full" and full.exists():
            out[path.stem] = (full, "full profile run")
        elif profile == "full":
            out[path.stem] = (path, "quick run (no full run stored)")
        else:
            out[path.stem] = (path, "quick run (committed)")
    return out


_CODE = re.compile(r"(```.*?```|~~~.*?~~~|`[^`\n]*`)", re.S)
_MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?![\s$])([^$\n]+?)(?<![\s\\])\$(?!\d)", re.S)


def markdown_math(text: str, formulas: list[str], warnings: Optional[list[str]] = None) -> str:
    """``text`` with every ``$...$`` and ``$$...$$`` outside code replaced by a placeholder word; the
    formula's MathML (``latex2mathml``) is appended to ``formulas`` (:func:`put_math` puts it back into the
    rendered HTML: Markdown renderers mangle inline MathML). A formula that does not convert becomes code
    and is reported in ``warnings``."""
    from latex2mathml.converter import convert

    def render(match: re.Match) -> str:
        display = match.group(1) is not None
        latex = (match.group(1) if display else match.group(2)).strip()
        try:
            mathml = convert(latex, display="block" if display else "inline").replace("\n", "")
        except Exception as error:  # latex2mathml raises a variety of errors on unsupported input
            if warnings is not None:
                warnings.append(f"{latex!r}: {type(error).__name__}: {error}")
            mathml = f"<code>{html.escape(latex)}</code>"
        formulas.append(mathml)
        return _placeholder(len(formulas) - 1)

    parts = _CODE.split(text)
    return "".join(part if i % 2 else _MATH.sub(render, part) for i, part in enumerate(parts))


def _placeholder(i: int) -> str:
    return f"OTLIBMATH{i}Z"


def put_math(page: str, formulas: list[str]) -> str:
    """The rendered page with each placeholder of :func:`markdown_math` replaced by its MathML."""
    return re.sub(r"OTLIBMATH(\d+)Z", lambda m: formulas[int(m.group(1))], page)


def _is_progress(output: dict) -> bool:
    return output.get("output_type") == "stream" and output.get("name") == "stderr" or (
        output.get("output_type") in ("display_data", "execute_result") and WIDGET_VIEW in output.get("data", {}))


def clean_notebook(nb: Any, formulas: list[str], warnings: Optional[list[str]] = None) -> Any:
    """A copy of ``nb`` fit for a static page: no stderr, no widget views, math as placeholders for
    ``formulas`` (:func:`markdown_math`), notebook links pointing at the pages."""
    nb = _copy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if not _is_progress(o)]
        elif cell.cell_type == "markdown":
            source = markdown_math(cell.source, formulas, warnings)
            cell.source = re.sub(r"\]\(([A-Za-z0-9_]+)\.ipynb(#[^)]*)?\)", r"](\1.html\2)", source)
    return nb


def _copy(nb: Any) -> Any:
    import copy

    return copy.deepcopy(nb)


# ----------------------------------------------------------------------------------------------------
# Tables and figures of a notebook.

@dataclasses.dataclass
class TableOut:
    """A table a notebook saved (``save_table(..., "name")``) and its stored HTML ("" when not shown)."""

    notebook: str
    name: str
    cell_id: str
    html: str


@dataclasses.dataclass
class FigureOut:
    """A PNG a notebook displayed."""

    notebook: str
    cell_id: str
    index: int
    png: bytes
    title: str = ""
    """The name the cell saves it under (``savefig(fig, "name")``), when it says."""


def _saved_names(source: str, method: str) -> list[str]:
    """The literal names given to ``<obj>.<method>(thing, "name", ...)`` calls in a cell, in order."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython syntax (magics): no calls to find
        return []
    names = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)):
            names.append((node.lineno, node.col_offset, str(node.args[1].value)))
    return [name for _, _, name in sorted(names)]


def saved_table_names(source: str) -> list[str]:
    """The names given to ``save_table(table, "name", ...)`` calls in a cell, in order."""
    return _saved_names(source, "save_table")


def tables_and_figures(name: str, nb: Any) -> tuple[list[TableOut], list[FigureOut]]:
    """The saved tables (their stored HTML outputs) and displayed figures of a notebook."""
    tables, figures = [], []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        saved = saved_table_names(cell.source)
        htmls = [o["data"]["text/html"] for o in cell.get("outputs", [])
                 if o.get("output_type") in ("execute_result", "display_data") and "text/html" in o.get("data", {})]
        for i, table_name in enumerate(saved):  # a table the cell saves but does not show gets an empty entry
            tables.append(TableOut(name, table_name, cell.get("id", ""), _text(htmls[i]) if i < len(htmls) else ""))
        pngs = [o["data"]["image/png"] for o in cell.get("outputs", [])
                if o.get("output_type") in ("execute_result", "display_data") and "image/png" in o.get("data", {})]
        titles = _saved_names(cell.source, "savefig")
        for i, png in enumerate(pngs):
            title = titles[i] if len(titles) == len(pngs) else ""
            figures.append(FigureOut(name, cell.get("id", ""), i, base64.b64decode(_text(png)), title))
    return tables, figures


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else value


Cell = tuple[str, str, int, int]
"""A parsed table cell: tag ("th" or "td"), text, rowspan, colspan."""


class _TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.head: list[list[Cell]] = []
        self.body: list[list[Cell]] = []
        self._section = "body"
        self._row: Optional[list[Cell]] = None
        self._cell: Optional[tuple[str, int, int, list[str]]] = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "thead":
            self._section = "head"
        elif tag == "tbody":
            self._section = "body"
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            spans = {k: int(v) for k, v in attrs if k in ("rowspan", "colspan") and v and v.isdigit()}
            self._cell = (tag, spans.get("rowspan", 1), spans.get("colspan", 1), [])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            kind, rowspan, colspan, text = self._cell
            self._row.append((kind, " ".join("".join(text).split()), rowspan, colspan))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            (self.head if self._section == "head" else self.body).append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[3].append(data)


def _unspan(rows: list[list[Cell]]) -> list[list[tuple[str, str]]]:
    """Rows with each ``rowspan`` cell repeated in the rows it spans (pandas' sparsified index levels)."""
    out: list[list[tuple[str, str]]] = []
    carried: dict[int, tuple[str, str, int]] = {}  # column -> (tag, text, rows left)
    for row in rows:
        full: list[tuple[str, str]] = []
        cells = iter(row)
        column = 0
        while True:
            if column in carried:
                tag, text, left = carried.pop(column)
                full.append((tag, text))
                if left > 1:
                    carried[column] = (tag, text, left - 1)
                column += 1
                continue
            cell = next(cells, None)
            if cell is None:
                break
            tag, text, rowspan, _ = cell
            full.append((tag, text))
            if rowspan > 1:
                carried[column] = (tag, text, rowspan - 1)
            column += 1
        out.append(full)
    return out


def parse_table(table_html: str) -> Optional[tuple[list[str], list[tuple[tuple[str, ...], list[str]]]]]:
    """``(columns, [(index, values), ...])`` of a pandas DataFrame's HTML, ``index`` a tuple with one
    string per index level (sparsified levels filled in); None for other shapes (several column levels)."""
    parser = _TableParser()
    parser.feed(table_html)
    if not parser.head or not parser.body or any(c[3] > 1 for r in parser.head + parser.body for c in r):
        return None
    body = _unspan(parser.body)
    levels = next((i for i, (tag, _) in enumerate(body[0]) if tag != "th"), len(body[0]))
    if levels == 0:
        return None
    columns = [text for _, text, _, _ in parser.head[0]][levels:]
    rows = [(tuple(t for _, t in r[:levels]), [t for _, t in r[levels:]]) for r in body]
    if any(len(values) != len(columns) for _, values in rows):
        return None
    return columns, rows


_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)")


def _number(text: str) -> float:
    """The leading number of a cell ("14.82 ± 0.09" -> 14.82); NaN for ">100", "–" and the like."""
    match = _NUMBER.match(text)
    return float(match.group(1)) if match else math.nan


def _dim(text: str) -> Optional[int]:
    match = re.fullmatch(r"(?:D\s*=\s*)?(\d+)", text.strip())
    return int(match.group(1)) if match else None


Row = dict[str, Any]


Rows = list[tuple[tuple[str, ...], list[str]]]


def _compare_baselines(columns: list[str], rows: Rows) -> list[Row]:
    published = published_baselines()
    out = []
    for index, values in rows:
        dim = _dim(index[0])
        for name in ("identity", "linear"):
            if dim in published and name in columns:
                out.append({"row": name, "D": dim, "ours": _number(values[columns.index(name)]),
                            "published": published[dim][name], "source": "Korotin et al. (2021), HD table"})
    return out


def _compare_hd(columns: list[str], rows: Rows) -> list[Row]:
    published = published_hd()
    out = []
    for (index, *_), values in rows:
        key = index if index in published else ("W2OT best" if index.startswith("W2OT") else None)
        if key is None:
            continue
        for column, value in zip(columns, values):
            dim = _dim(column)
            if dim in published[key]["values"]:
                out.append({"row": index, "D": dim, "ours": _number(value), "published": published[key]["values"][dim],
                            "source": published[key]["source"]})
    return out


def _compare_published_column(columns: list[str], rows: Rows) -> list[Row]:
    """A table that carries its published values in a column: ours = the first column whose name starts
    with "ours" (else the first column); D = a second index level that is a dimension."""
    published = [c for c in columns if "published" in c.lower()]
    if not published:
        return []
    ours = next((c for c in columns if c.lower().startswith("ours")), columns[0])
    out = []
    for index, values in rows:
        dim = _dim(index[1]) if len(index) > 1 else None
        out.append({"row": " / ".join(index) if dim is None else index[0], "D": dim,
                    "ours": _number(values[columns.index(ours)]),
                    "published": _number(values[columns.index(published[0])]),
                    "source": f"the table's column {published[0]!r}; ours: {ours!r}"})
    return [r for r in out if not math.isnan(r["published"])]


COMPARISONS: dict[tuple[str, str], Callable[[list[str], Rows], list[Row]]] = {
    ("w2_benchmark_baselines", "baselines"): _compare_baselines,
    ("w2_benchmark_hd", "l2_uvp"): _compare_hd,
}
"""Tables whose rows are matched to published values held elsewhere in otlib (by notebook and table name)."""

NOTES: dict[tuple[str, str], str] = {
    ("vegan2017_pot_vs_vae", "table1_wae_paper_celeba"):
        "This table is the WAE paper's published CelebA row set itself (Tolstikhin et al. 2018, Table 1), shown "
        "beside otlib's digits table: the data sets differ, so there is no ratio.",
    ("vegan2017_pot_vs_vae", "table1_digits"):
        "Measured on scikit-learn's digits, not CelebA: compare the ordering with the WAE paper's table below, "
        "not the values.",
}
"""What the index says of a table without a ratio, where more than the default can be said."""


def comparison(table: TableOut) -> list[Row]:
    """The table's cells next to their published values: rows of ``row, D, ours, published, ratio, source``
    (empty when the table has no published counterpart)."""
    parsed = parse_table(table.html) if table.html else None
    if parsed is None:
        return []
    rule = COMPARISONS.get((table.notebook, table.name), _compare_published_column)
    rows = rule(*parsed)
    for r in rows:
        r["ratio"] = r["ours"] / r["published"] if r["published"] and not math.isnan(r["ours"]) else math.nan
    return rows


# ----------------------------------------------------------------------------------------------------
# Pages.

@dataclasses.dataclass
class Page:
    """One notebook's page and what the index shows of it."""

    name: str
    source: Path
    kind: str
    title: str
    tables: list[TableOut]
    figures: list[FigureOut]


def _title(nb: Any, name: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return re.sub(r"[*_`$\\]", "", line[2:]).strip()
    return name


def _exporter():
    import jinja2
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="lab", extra_loaders=[jinja2.DictLoader({"otlib_site.html.j2": _TEMPLATE})],
                        template_file="otlib_site.html.j2", embed_images=True)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1500px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
.pair { display: flex; gap: 2em; align-items: flex-start; } .pair > div { overflow-x: auto; flex: 0 1 auto; }
.thumbs { display: flex; flex-wrap: wrap; gap: 12px; }
.thumbs figure { margin: 0; width: %dpx; } .thumbs img { width: 100%%; border: 1px solid #ccc; }
.thumbs figcaption { font-size: 0.75em; color: #555; }
.note { color: #666; font-size: 0.9em; } .far { background: #fde7e7; } .near { background: #e6f4e6; }
""" % THUMBNAIL_WIDTH


def _comparison_html(rows: list[Row]) -> str:
    head = "<tr><th>row</th><th>D</th><th>ours</th><th>published</th><th>ours / published</th><th>source</th></tr>"
    body = []
    for r in rows:
        ratio = r["ratio"]
        css = "" if math.isnan(ratio) else ("near" if 0.8 <= ratio <= 1.25 else "far")
        body.append(f"<tr><td>{html.escape(str(r['row']))}</td><td>{'' if r['D'] is None else r['D']}</td>"
                    f"<td>{_fmt(r['ours'])}</td><td>{_fmt(r['published'])}</td><td class='{css}'>{_fmt(ratio)}</td>"
                    f"<td style='text-align:left'>{html.escape(r['source'])}</td></tr>")
    return f"<table class='comparison'>{head}{''.join(body)}</table>"


def _fmt(value: float) -> str:
    return "n/a (diverged or missing)" if math.isnan(value) else f"{value:.3g}"


def _index_html(pages: list[Page], profile: str, thumbs: dict[tuple[str, str, int], str]) -> str:
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>otlib: executed notebooks "
             f"({profile})</title><style>{_STYLE}</style></head><body>",
             f"<h1>otlib: the executed notebooks ({profile} profile)</h1>",
             "<p class='note'>Built from the stored outputs of the notebooks (nothing re-executed). Ratios are "
             "ours / published; green within 0.8 to 1.25, red outside.</p>",
             "<h2 id='notebooks'>Notebooks</h2><ul>"]
    for p in pages:
        parts.append(f"<li><a href='{p.name}.html'>{html.escape(p.name)}</a>: {html.escape(p.title)} "
                     f"<span class='note'>({html.escape(p.kind)}; {len(p.tables)} tables, {len(p.figures)} "
                     f"figures)</span></li>")
    parts.append("</ul><h2 id='tables'>Tables next to the published values</h2>")
    for p in pages:
        for t in p.tables:
            rows = comparison(t)
            anchor = f"{p.name}.html#cell-id={t.cell_id}" if t.cell_id else f"{p.name}.html"
            shown = t.html or ("<p class='note'>The notebook saves this table (in its run folder under "
                               "<code>results/</code>) without showing it: no stored output to show here.</p>")
            parts.append(f"<h3 id='table-{p.name}-{t.name}'><a href='{anchor}'>{html.escape(p.name)} / "
                         f"{html.escape(t.name)}</a></h3><div class='pair'><div>{shown}</div><div>")
            note = NOTES.get((p.name, t.name), "No published values for this table: it is otlib's own "
                             "measurement or check, or the paper gives it as a figure.")
            if t.html:
                parts.append(_comparison_html(rows) if rows else f"<p class='note'>{html.escape(note)}</p>")
            parts.append("</div></div>")
    parts.append("<h2 id='figures'>Figures</h2>")
    for p in pages:
        if not p.figures:
            continue
        parts.append(f"<h3>{html.escape(p.name)}</h3><div class='thumbs'>")
        for f in p.figures:
            anchor = f"{p.name}.html#cell-id={f.cell_id}" if f.cell_id else f"{p.name}.html"
            src = thumbs[(f.notebook, f.cell_id, f.index)]
            parts.append(f"<figure><a href='{anchor}'><img src='{src}' alt='{html.escape(p.name)} figure' "
                         f"></a><figcaption>{html.escape(f.title or 'cell ' + f.cell_id)}</figcaption></figure>")
        parts.append("</div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _thumbnail(png: bytes, path: Path) -> None:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        image = image.convert("RGBA")
        height = max(1, round(image.height * THUMBNAIL_WIDTH / image.width))
        image.resize((THUMBNAIL_WIDTH, height), Image.LANCZOS).save(path, optimize=True)


def build(out: Path, profile: str = "quick", only: Optional[list[str]] = None, *, verbose: bool = True) -> list[Page]:
    """Write the site to ``out`` (replaced): ``index.html``, one ``<notebook>.html`` each, ``thumbs/``."""
    import nbformat

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "thumbs").mkdir(parents=True)
    exporter = _exporter()
    pages, thumbs = [], {}
    for name, (path, kind) in sources(profile).items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        warnings: list[str] = []
        formulas: list[str] = []
        clean = clean_notebook(nb, formulas, warnings)
        body, _ = exporter.from_notebook_node(clean, resources={"metadata": {"name": name}})
        (out / f"{name}.html").write_text(put_math(body, formulas), encoding="utf-8")
        tables, figures = tables_and_figures(name, clean)
        for f in figures:
            file = f"thumbs/{name}-{f.cell_id or 'cell'}-{f.index}.png"
            _thumbnail(f.png, out / file)
            thumbs[(f.notebook, f.cell_id, f.index)] = file
        pages.append(Page(name, path, kind, _title(nb, name), tables, figures))
        if verbose:
            print(f"{name}: {len(tables)} tables, {len(figures)} figures, {time.perf_counter() - start:.1f} s"
                  + "".join(f"\n  math not converted: {w}" for w in warnings), flush=True)
    (out / "index.html").write_text(_index_html(pages, profile, thumbs), encoding="utf-8")
    return pages


class _Links(HTMLParser):
    """Every ``id`` of a page, and every (tag, attribute, value) of its ``href`` and ``src`` attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            elif name in ("href", "src") and value is not None:
                self.links.append((tag, name, value))


_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)
_LOADS = {"script", "link", "img", "iframe", "source", "video", "audio", "embed", "object"}


def check_links(out: Path) -> list[str]:
    """Problems with the site in ``out``: a local link to a missing file or anchor, or a page that loads
    anything (script, style, image) from outside the site. Links to other sites are allowed, not
    followed (there may be no network)."""
    out = Path(out).resolve()
    pages = {}
    for path in sorted(out.rglob("*.html")):
        parser = _Links()
        parser.feed(path.read_text(encoding="utf-8"))
        pages[path] = parser
    problems = []
    for path, parser in pages.items():
        where = path.relative_to(out)
        for tag, attribute, value in parser.links:
            if _REMOTE.match(value) or value.lower().startswith(("http:", "https:")):
                if tag in _LOADS or attribute == "src":
                    problems.append(f"{where}: <{tag} {attribute}> loads {value!r} from outside the site")
                continue
            if value.startswith(("data:", "mailto:", "javascript:")) or value == "":
                continue
            target, _, fragment = value.partition("#")
            file = (path.parent / target).resolve() if target else path
            if not file.is_relative_to(out) or not file.exists():
                problems.append(f"{where}: <{tag} {attribute}={value!r}> points at a missing file")
            elif fragment and file.suffix == ".html" and fragment not in pages[file].ids:
                problems.append(f"{where}: <{tag} {attribute}={value!r}> points at a missing anchor")
    return problems


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otlib.report.site", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "site", help="output folder (replaced)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these notebooks")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    pages = build(args.out, args.profile, args.only)
    problems = check_links(args.out)
    for problem in problems:
        print(f"link problem: {problem}", file=sys.stderr)
    print(f"{len(pages)} pages in {time.perf_counter() - start:.1f} s, {len(problems)} link problems: "
          f"open {args.out / 'index.html'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
