"""Notebook parameters: declared, documented and checked in one place, the notebook's ``parameters`` cell.

Each line of the cell is ``name = literal  # what it is, its unit [rule; rule]`` (one ``=`` per line, which
Papermill's own reading of the cell needs, hence ``≥`` rather than ``>=``): the default's type is the
parameter's type, the comment is its description (``python -m otlib.reproduce --list`` prints it), and the
bracket at the end of the comment, when present, holds the rules a value must meet:

* ``≥ 1``, ``> 0``, ``≤ 1``, ``< 1`` (or ``>= 1``, ``<= 1``): a bound;
* ``in (0, 1)``, ``in [0, 1)``, ...: an interval (round brackets exclude the end);
* ``in {"nn", "icnn"}``: allowed values (Python literals);
* ``in otlib.bench.hd_table.ROWS``: allowed values named by a module attribute (imported when checked);
* ``each RULE``: the rule for every element of a list;  ``non-empty``: a list with at least one element.

:func:`check_namespace` is what the validation cell right after ``parameters`` calls; the runner
(:mod:`otlib.report.reproduce`) calls :func:`check_values` with the same rules before any kernel starts.
Both stop at the first wrong parameter with one line naming it, the value and what is allowed.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import io
import json
import math
import re
import tokenize
from pathlib import Path
from typing import Any, Callable, Mapping, MutableMapping, Optional

from otlib.core.paths import notebooks_dir

__all__ = ["ParameterError", "Parameter", "read_cell", "read_notebook", "check_values", "check_namespace",
           "last_checked"]

_CHECKED: dict[str, dict[str, Any]] = {}


class ParameterError(ValueError):
    """A parameter that the notebook does not have, or a value it does not accept (one line)."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows this list instead of a traceback: the error is about a value, not about the code.
        return [f"\x1b[0;31mParameterError\x1b[0m: {self}"]


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One line of a ``parameters`` cell: its name, default, description and rules (as written)."""

    name: str
    default: Any
    description: str = ""
    rules: str = ""

    def check(self, value: Any, notebook: str = "") -> Any:
        """``value`` converted to the default's type (int -> float) if it meets every rule, else
        :class:`ParameterError`."""
        value = _coerce(self.name, value, self.default, notebook)
        for rule in _compile(self.rules, f"{notebook}: parameter {self.name!r}"):
            rule(self.name, value, notebook)
        return value


def _prefix(notebook: str) -> str:
    return f"{notebook}: " if notebook else ""


def _type_name(value: Any) -> str:
    if isinstance(value, (list, tuple)) and value:
        return f"list of {_type_name(value[0])}"
    return {"str": "string", "bool": "bool", "int": "int", "float": "float", "list": "list",
            "dict": "mapping", "NoneType": "None"}.get(type(value).__name__, type(value).__name__)


def _coerce(name: str, value: Any, default: Any, notebook: str) -> Any:
    """``value`` converted to the type of ``default``, or a :class:`ParameterError`."""
    def fail() -> ParameterError:
        return ParameterError(f"{_prefix(notebook)}parameter {name} = {value!r} has the wrong type: expected a "
                              f"{_type_name(default)} like {default!r}, got a {_type_name(value)}")

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
        if isinstance(value, str):  # papermill -p dims "[2, 4]" passes the text: read it as a Python literal
            try:
                parsed = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                parsed = None
            value = list(parsed) if isinstance(parsed, (list, tuple)) else value
        if not isinstance(value, (list, tuple)):
            raise fail()
        if default:
            return [_coerce(f"{name}[{i}]", v, default[0], notebook) for i, v in enumerate(value)]
        return list(value)
    if isinstance(default, dict):
        if isinstance(value, dict):
            return value
        raise fail()
    return value


# --- rules -------------------------------------------------------------------------------------------------------

Rule = Callable[[str, Any, str], None]
_BOUND = re.compile(r"^(>=|>|<=|<|≥|≤)\s*(\S+)$")
_INTERVAL = re.compile(r"^in\s*([\[(])\s*([^,]+),\s*([^\])]+)([\])])$")
_DOTTED = re.compile(r"^in\s+([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+)$")


def _number(text: str, where: str) -> float:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ParameterError(f"{where}: rule bound {text.strip()!r} is not a number")
    return value


def _reject(name: str, value: Any, notebook: str, allowed: str) -> ParameterError:
    return ParameterError(f"{_prefix(notebook)}parameter {name} = {value!r} is not allowed: {allowed}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compile_one(text: str, where: str) -> Rule:
    text = text.strip()
    if text.startswith("each "):
        inner = _compile_one(text[5:], where)

        def each(name: str, value: Any, notebook: str) -> None:
            for i, item in enumerate(value if isinstance(value, (list, tuple)) else [value]):
                inner(f"{name}[{i}]", item, notebook)
        return each
    if text == "non-empty":
        def non_empty(name: str, value: Any, notebook: str) -> None:
            if isinstance(value, (list, tuple, str, dict)) and len(value) == 0:
                raise _reject(name, value, notebook, "it must not be empty")
        return non_empty
    if match := _BOUND.match(text):
        op, bound = match.group(1), _number(match.group(2), where)
        test = {">=": lambda v: v >= bound, ">": lambda v: v > bound, "≥": lambda v: v >= bound,
                "<=": lambda v: v <= bound, "<": lambda v: v < bound, "≤": lambda v: v <= bound}[op]

        def bounded(name: str, value: Any, notebook: str) -> None:
            if not (_is_number(value) and math.isfinite(value) and test(value)):
                raise _reject(name, value, notebook, f"it must be {op} {match.group(2)}")
        return bounded
    if match := _INTERVAL.match(text):
        left, lo, hi, right = match.group(1), _number(match.group(2), where), _number(match.group(3), where), match.group(4)

        def interval(name: str, value: Any, notebook: str) -> None:
            ok = _is_number(value) and math.isfinite(value)
            ok = ok and (value >= lo if left == "[" else value > lo) and (value <= hi if right == "]" else value < hi)
            if not ok:
                raise _reject(name, value, notebook, f"it must be {text}")
        return interval
    if match := _DOTTED.match(text):
        dotted = match.group(1)

        def named(name: str, value: Any, notebook: str) -> None:
            module, _, attr = dotted.rpartition(".")
            try:
                allowed = list(getattr(importlib.import_module(module), attr))
            except Exception as err:  # the rule names a table the library no longer has, or cannot import
                raise ParameterError(f"{_prefix(notebook)}cannot check parameter {name}: the allowed values "
                                     f"{dotted} did not load ({type(err).__name__}: {err})") from None
            if value not in allowed:
                raise _reject(name, value, notebook, f"it must be one of {', '.join(map(repr, allowed))}")
        return named
    if text.startswith("in {") and text.endswith("}"):
        try:
            allowed = ast.literal_eval(text[3:].strip())
        except (ValueError, SyntaxError):
            allowed = None
        if not isinstance(allowed, (set, frozenset)):
            raise ParameterError(f"{where}: cannot read the allowed values {text[3:]!r}")
        shown = text[3:].strip()

        def one_of(name: str, value: Any, notebook: str) -> None:
            if isinstance(value, (list, dict)) or value not in allowed or (
                    isinstance(value, bool) and not any(a is value for a in allowed)):
                raise _reject(name, value, notebook, f"it must be one of {shown[1:-1]}")
        return one_of
    raise ParameterError(f"{where}: unknown rule {text!r} (see otlib.report.parameters)")


def _split_rules(rules: str) -> list[str]:
    """``"each in {1, 2}; non-empty"`` -> its rules, splitting on ``;`` outside brackets and quotes."""
    parts, depth, quote, current = [], 0, "", ""
    for char in rules:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == ";" and depth == 0 and not quote:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _compile(rules: str, where: str) -> list[Rule]:
    return [_compile_one(text, where) for text in _split_rules(rules)]


# --- reading the cell --------------------------------------------------------------------------------------------

def _split_comment(comment: str) -> tuple[str, str]:
    """``"seeds per D [>= 1]"`` -> ``("seeds per D", ">= 1")``: the trailing bracket holds the rules."""
    comment = comment.strip()
    if not comment.endswith("]"):
        return comment, ""
    depth = 0
    for i in range(len(comment) - 1, -1, -1):
        depth += 1 if comment[i] in ")]}" else -1 if comment[i] in "([{" else 0  # "(0, 1]" is balanced
        if depth == 0 and comment[i] == "[":
            if i == 0 or comment[i - 1] == " ":
                return comment[:i].rstrip(), comment[i + 1:-1].strip()
            return comment, ""
    return comment, ""


def read_cell(source: str, notebook: str = "") -> dict[str, Parameter]:
    """The parameters declared by a ``parameters`` cell's source (``name = literal  # description [rules]``)."""
    where = notebook or "parameters cell"
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string[1:].strip()
        tree = ast.parse(source)
    except (SyntaxError, tokenize.TokenError) as err:
        raise ParameterError(f"{where}: the parameters cell is not valid Python ({err})") from None
    params: dict[str, Parameter] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ParameterError(f"{where}: the parameters cell may hold only `name = literal` lines "
                                 f"(line {node.lineno}); derive values in the next cell")
        name = node.targets[0].id
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            raise ParameterError(f"{where}: parameter {name!r} is not a literal (line {node.lineno}); "
                                 f"derive values in the next cell") from None
        text = " ".join(comments[line] for line in range(node.lineno, node.end_lineno + 1) if line in comments)
        description, rules = _split_comment(text)
        param = Parameter(name, default, description, rules)
        _compile(rules, f"{where}: parameter {name!r}")  # a malformed rule is an error of the notebook
        params[name] = param
    return params


def parameters_cell_source(nb_json: Mapping, notebook: str = "") -> str:
    """The source of the one cell tagged ``parameters``."""
    cells = [c for c in nb_json["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"notebook {notebook} must have exactly one cell tagged 'parameters', found {len(cells)}")
    source = cells[0]["source"]
    return "".join(source) if isinstance(source, list) else source


def read_notebook(path: Path, notebook: Optional[str] = None) -> dict[str, Parameter]:
    """The parameters declared by the notebook at ``path``."""
    notebook = notebook or Path(path).stem
    return read_cell(parameters_cell_source(json.loads(Path(path).read_text()), notebook), notebook)


def check_values(values: Mapping[str, Any], spec: Mapping[str, Parameter], notebook: str = "") -> dict[str, Any]:
    """``values`` checked against ``spec`` (unknown names refused), converted to the defaults' types."""
    checked = {}
    for name, value in values.items():
        if name not in spec:
            raise ParameterError(f"{_prefix(notebook)}unknown parameter {name!r}; accepted: {', '.join(sorted(spec))}")
        checked[name] = spec[name].check(value, notebook)
    return checked


def check_namespace(notebook: str, namespace: MutableMapping[str, Any]) -> None:
    """Check every parameter of ``notebooks/<notebook>.ipynb`` as it stands in ``namespace`` (the notebook's
    ``globals()``, after Papermill injected its values) and store the converted values back."""
    spec = read_notebook(notebooks_dir(f"{notebook}.ipynb"), notebook)
    missing = [name for name in spec if name not in namespace]
    if missing:
        raise ParameterError(f"{notebook}: parameter {missing[0]} is not set: run the parameters cell first")
    if namespace.get("profile") == "full":
        _select_full_profile(notebook, spec, namespace)
    checked = check_values({name: namespace[name] for name in spec}, spec, notebook)
    namespace.update(checked)
    _CHECKED[notebook] = checked


def _select_full_profile(notebook: str, spec: Mapping[str, Parameter], namespace: MutableMapping[str, Any]) -> None:
    """``profile = "full"`` set in the notebook (or by ``papermill -p profile full``) selects the full profile:
    every parameter still at its quick default takes the value of ``notebooks/params/full/<notebook>.yaml``, as
    ``python -m otlib.reproduce --profile full`` would inject it."""
    import yaml

    path = notebooks_dir("params", "full", f"{notebook}.yaml")
    if not path.exists():
        raise ParameterError(f"{notebook}: parameter profile = 'full' is not allowed: no full profile at "
                             f"notebooks/params/full/{notebook}.yaml")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ParameterError(f"notebooks/params/full/{notebook}.yaml is not valid YAML: "
                             f"{str(err).splitlines()[0]}") from None
    taken = [name for name, value in loaded.items()
             if name in spec and name != "profile" and namespace.get(name) == spec[name].default]
    for name in taken:
        namespace[name] = loaded[name]
    if taken:
        print(f"profile 'full': {len(taken)} parameters from notebooks/params/full/{notebook}.yaml")


def last_checked(notebook: str) -> Optional[dict[str, Any]]:
    """The values :func:`check_namespace` last accepted for ``notebook`` in this process, if any."""
    return _CHECKED.get(notebook)
