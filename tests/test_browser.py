"""JupyterLab in a real browser: headless Chromium (Debian's, driven by Playwright) runs the explorer and a
benchmark notebook the way a reader does, through JupyterLab's own menus and widgets.

The test starts JupyterLab on 127.0.0.1 at a free port with a random token, from this environment, on
copies of the notebooks in a temporary folder (so no committed notebook is touched), with its own Jupyter
config, runtime, settings and workspace folders. It stops the server and every process under it (kernels
included) on every exit path. Screenshots go to ``results/browser/`` (on failure, and of each final page).

The browser is the system's (``/usr/bin/chromium``, or ``$OTLIB_CHROMIUM``); nothing is downloaded. Where it
is missing the tests skip with a loud message, except in CI (``CI=true``), where ``.ci/run`` installs it and
a missing browser fails unless ``.ci/run`` reported it could not be installed (``$OTLIB_BROWSER_UNAVAILABLE``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

from otlib.core.paths import notebooks_dir, results_dir, shared_dir

SCREENSHOTS = results_dir("browser")
START_TIMEOUT_S = 120
RUN_TIMEOUT_MS = 240_000
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    for candidate in (os.environ.get("OTLIB_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    _unavailable("Debian's chromium is not installed (apt-get install chromium)")
    raise AssertionError("unreachable")


def _unavailable(reason: str) -> None:
    message = f"BROWSER TEST SKIPPED: {reason}"
    if os.environ.get("CI") == "true" and not os.environ.get("OTLIB_BROWSER_UNAVAILABLE"):
        pytest.fail(f"{reason}; .ci/run installs it and would have said if it could not", pytrace=False)
    print(f"\n{'!' * 100}\n{message}\n{'!' * 100}", file=sys.__stderr__, flush=True)
    warnings.warn(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the server process: get SIGTERM when the test process dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _request(url: str, token: str, method: str = "GET", timeout: float = 5.0) -> int:
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"},
                                     data=b"" if method in ("POST", "DELETE") else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


def _stop(server: subprocess.Popen, base: str, token: str, grace_s: float = 20.0) -> None:
    """Stop the server and every process under it (kernels run in their own sessions, so a process group
    signal would miss them): ask the server to shut down, then terminate, then kill what is left."""
    try:
        import psutil

        tree = psutil.Process(server.pid).children(recursive=True)
    except Exception:  # psutil missing, or the server already gone
        psutil, tree = None, []
    with contextlib.suppress(Exception):
        _request(f"{base}/api/shutdown", token, "POST")
    try:
        server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    if psutil is not None:
        alive = [p for p in tree if p.is_running()]
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.terminate()
        _, alive = psutil.wait_procs(alive, timeout=10)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(alive, timeout=10)
        assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], "processes left over"


def test_stop_ends_the_server_and_what_it_started_in_other_sessions():
    """What the fixture does on every exit path, on a stand-in server that starts a child in a new session
    (as Jupyter starts kernels) and ignores the shutdown request (nothing listens at its address)."""
    psutil = pytest.importorskip("psutil")
    child = "import time; time.sleep(600)"
    code = (f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}], "
            "start_new_session=True); time.sleep(600)")
    server = subprocess.Popen([sys.executable, "-c", code])
    kernel = None
    try:
        deadline = time.monotonic() + 30
        while not psutil.Process(server.pid).children() and time.monotonic() < deadline:
            time.sleep(0.1)
        (kernel,) = psutil.Process(server.pid).children()
        assert kernel.pid != server.pid and os.getsid(kernel.pid) != os.getsid(server.pid)
        _stop(server, f"http://127.0.0.1:{_free_port()}", "token", grace_s=1.0)
        assert server.poll() is not None
        assert not kernel.is_running() or kernel.status() == psutil.STATUS_ZOMBIE
    finally:
        for process in (psutil.Process(server.pid) if server.poll() is None else None, kernel):
            with contextlib.suppress(Exception):
                process.kill()
        server.poll()


@pytest.fixture(scope="module")
def chromium() -> str:
    return _chromium()


@pytest.fixture(scope="module")
def browser(chromium):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[peers]')")
    with sync_playwright() as p:
        try:
            instance = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        except Exception as error:
            _unavailable(f"{chromium} does not start under Playwright: {error}")
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on copies of the notebooks: ``(base url, token, folder)``."""
    root = tmp_path_factory.mktemp("lab")
    for name in ("explore_2d", "w2_benchmark_baselines"):
        shutil.copy(notebooks_dir(f"{name}.ipynb"), root / f"{name}.ipynb")
    settings = root / ".settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"checkForUpdates": False, "fetchNews": "false", "doNotDisturbMode": True}))
    port, token = _free_port(), secrets.token_hex(24)
    env = {k: v for k, v in os.environ.items()
           if k not in ("TQDM_DISABLE", "OTLIB_PROGRESS", "OTLIB_RUN_DIR", "OTLIB_STORE_FIGURES")}
    env.update(JUPYTER_CONFIG_DIR=str(root / ".jupyter"), JUPYTER_RUNTIME_DIR=str(root / ".runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(root / ".settings"), JUPYTERLAB_WORKSPACES_DIR=str(root / ".workspaces"),
               IPYTHONDIR=str(root / ".ipython"), JAX_PLATFORMS=env.get("JAX_PLATFORMS", "cpu"),
               TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    data = shared_dir("w2bench", "Mix3toMix10")
    if "OTLIB_DATA_DIR" not in env and (data / "2_v1.pt").exists():
        env["OTLIB_DATA_DIR"] = str(data)
    log = open(root / "jupyterlab.log", "w")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--ServerApp.open_browser=False", "--LabApp.news_url=None"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI runs as root
        cmd.append("--allow-root")
    server = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              preexec_fn=_die_with_parent)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {server.returncode}:\n{(root / 'jupyterlab.log').read_text()}")
            with contextlib.suppress(Exception):
                if _request(f"{base}/api/status", token) == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer in {START_TIMEOUT_S} s:\n"
                                   f"{(root / 'jupyterlab.log').read_text()}")
            time.sleep(0.5)
        yield base, token, root, env
    finally:
        _stop(server, base, token)
        log.close()


@contextlib.contextmanager
def _page(browser, lab, notebook: str):
    """A page with ``notebook`` open, alone in a fresh workspace, and its kernel idle; on the way out a
    screenshot named after how the test ended, and the notebook's kernel shut down."""
    base, token, _, _ = lab
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    outcome = "failed"
    try:
        page.goto(f"{base}/lab/workspaces/{notebook}/tree/{notebook}.ipynb?reset&token={token}",
                  timeout=RUN_TIMEOUT_MS)
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=RUN_TIMEOUT_MS)
        _wait_kernel(base, token, f"{notebook}.ipynb")
        _wait_idle(page)
        yield page
        outcome = "ok"
    finally:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(SCREENSHOTS / f"{notebook}-{outcome}.png"), full_page=True)
        context.close()
        with contextlib.suppress(Exception):
            for session in _api(base, token, "sessions"):
                if session.get("path") == f"{notebook}.ipynb":
                    _request(f"{base}/api/sessions/{session['id']}", token, "DELETE")


def _api(base: str, token: str, what: str):
    request = urllib.request.Request(f"{base}/api/{what}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _wait_kernel(base: str, token: str, path: str) -> None:
    """Wait until the notebook at ``path`` has a kernel that is idle with a browser connected to it."""
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            for session in _api(base, token, "sessions"):
                kernel = session.get("kernel") or {}
                if (session.get("path") == path and kernel.get("execution_state") == "idle"
                        and kernel.get("connections", 0) > 0):
                    return
        time.sleep(0.5)
    raise AssertionError(f"{path}: no kernel became idle with a connection")


_IDLE = """() => { const s = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return s === null || s.getAttribute('data-status') === 'idle'; }"""


def _wait_idle(page) -> None:
    page.wait_for_function(_IDLE, timeout=RUN_TIMEOUT_MS, polling=500)


def _menu(page, menu: str, item: str) -> None:
    """Click ``menu`` in JupyterLab's menu bar, then its ``item``."""
    page.click(f".lm-MenuBar-itemLabel:text-is('{menu}')")
    page.click(f".lm-Menu-itemLabel:text-is('{item}')")


_FINISHED = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (panel.querySelector('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')) return 'stderr';
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)) ? 'done' : false;
}"""


_STARTED = """() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')]
  .some(p => /[*\\d]/.test(p.textContent))"""


def _run_all(page) -> None:
    """Clear every output, run every cell, and wait until each has run (or one printed to stderr)."""
    _menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function("""() => [...document.querySelectorAll(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')].every(p => !/\\d/.test(p.textContent))""",
                           timeout=30_000)
    for attempt in range(3):  # a click that lands while the kernel connection settles can be lost
        _menu(page, "Run", "Run All Cells")
        with contextlib.suppress(Exception):
            page.wait_for_function(_STARTED, timeout=20_000, polling=250)
            break
    handle = page.wait_for_function(_FINISHED, timeout=RUN_TIMEOUT_MS, polling=500)
    _no_error_output(page)
    assert handle.json_value() == "done"
    _wait_idle(page)


def _no_error_output(page) -> None:
    errors = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) '
                          '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert errors.count() == 0, "error or stderr output:\n" + "\n---\n".join(errors.all_inner_texts())


def _replace_text(page, editor, text: str) -> None:
    """Type ``text`` over a cell's whole source, as a reader would (click, select all, type), checking that
    the editor has the focus first and holds exactly ``text`` after."""
    for attempt in range(3):
        editor.click()
        page.wait_for_timeout(300)
        if not editor.evaluate("e => e.ownerDocument.activeElement === e || e.contains(e.ownerDocument.activeElement)"):
            continue
        page.keyboard.press("Control+Home")
        page.keyboard.press("Control+Shift+End")
        page.keyboard.insert_text(text)
        if editor.inner_text().strip() == text:
            page.keyboard.press("Escape")
            return
    raise AssertionError(f"could not replace the cell's text; it reads:\n{editor.inner_text()}")


def test_explorer_runs_and_trains_in_jupyterlab(browser, lab):
    started = time.perf_counter()
    with _page(browser, lab, "explore_2d") as page:
        _run_all(page)
        explorer = page.locator(".otlib-explorer")
        explorer.wait_for(state="visible")
        figure = explorer.locator(".otlib-figure img").first
        figure.wait_for(state="visible", timeout=30_000)
        before = figure.get_attribute("src")
        progress = explorer.locator(".otlib-progress")
        assert progress.is_visible() and "1000/1000" in progress.inner_text()

        for name, value in (("steps", "300"), ("seed", "1")):
            field = explorer.locator(f".widget-text:has(label:text-is('{name}')) input")
            field.fill(value)
            field.press("Tab")
        explorer.locator("button.otlib-train").click()
        page.wait_for_function("""() => document.querySelector('.otlib-status').innerText.includes('Done: 300 steps')""",
                               timeout=RUN_TIMEOUT_MS, polling=500)
        page.wait_for_function("""before => { const img = document.querySelector('.otlib-figure img');
            return img !== null && img.getAttribute('src') !== before; }""", arg=before, timeout=60_000)
        _no_error_output(page)
        assert "300/300" in progress.inner_text()
        assert progress.locator(".progress-bar-success").count() == 1
        assert "run 2:" in explorer.inner_text() and "enot on moons: 300 steps" in explorer.inner_text()
    print(f"explorer in the browser: {time.perf_counter() - started:.0f} s")


def test_benchmark_notebook_with_edited_parameters(browser, lab):
    _, _, _, env = lab
    if not (Path(env.get("OTLIB_DATA_DIR", shared_dir("w2bench", "Mix3toMix10"))) / "2_v1.pt").exists():
        pytest.skip(f"the official W2 benchmark files are not at {shared_dir('w2bench', 'Mix3toMix10')} "
                    "(the read-only shared folder) nor in $OTLIB_DATA_DIR; this notebook needs them")
    started = time.perf_counter()
    with _page(browser, lab, "w2_benchmark_baselines") as page:
        editor = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .cm-content").first
        assert 'profile = "quick"' in editor.inner_text()
        edited = 'profile = "quick"\ndims = [2, 4]\nseeds = 1\nn_eval = 16384\nseed = 0'
        _replace_text(page, editor, edited)
        _run_all(page)
        tables = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output table.dataframe")
        assert tables.count() == 1
        rows = tables.first.locator("tbody tr")
        assert rows.count() == 2, tables.first.inner_text()  # D = 2 and 4: the edited parameters were used
        assert "identity_paper" in tables.first.inner_text()
        images = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img")
        assert images.count() >= 2
        assert images.nth(1).evaluate("img => img.naturalWidth") > 100
    print(f"benchmark notebook in the browser: {time.perf_counter() - started:.0f} s")
