"""Progress bars that render in JupyterLab and stay quiet under nbval and in CI logs.

``tqdm.auto`` draws a widget inside a kernel and text in a terminal. Two switches, read at each call:

* ``TQDM_DISABLE=1`` (tqdm's own variable; the test suite sets it) hides every bar;
* ``OTLIB_PROGRESS=text`` forces a plain-text bar on stderr, which ``python -m otlib.reproduce``
  sets so executed notebooks store a readable final bar instead of widget JSON.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(*, total: int | None = None, desc: str = "", disable: bool = False, **kwargs: Any):
    """A tqdm bar (``with progress_bar(total=n) as bar: bar.update(k)``)."""
    disable = disable or os.environ.get("TQDM_DISABLE", "") not in ("", "0")
    if os.environ.get("OTLIB_PROGRESS") == "text":
        from tqdm.std import tqdm
        kwargs.setdefault("file", sys.stderr)
        kwargs.setdefault("mininterval", 5.0)
        kwargs.setdefault("ascii", True)
    else:
        from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, disable=disable, dynamic_ncols=True, **kwargs)
