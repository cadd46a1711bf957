"""Drive JupyterLab in headless Chromium the way a learner uses it: the harness of test_browser.py.

`jupyterlab(folder, env)` starts JupyterLab from this environment on 127.0.0.1 with a free port and a
random token, with cell windowing off (so every cell is in the DOM) and no news pop-ups, and always
stops it. `run_notebook(page, url, name)` opens a notebook, runs every cell from the Run menu,
waits until no cell is queued or running, and returns what a learner would see: error outputs,
unrendered widgets, figure count. Chromium comes from the system (Debian's `chromium`), driven by
Playwright for Python; Playwright's own browser download is never used.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BROWSER_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
WIDGET_FAILURES = ("Error displaying widget", "Loading widget...", "Widget Javascript not detected")


def find_browser() -> str | None:
    """The system Chromium ($CTS_BROWSER wins), or None."""
    explicit = os.environ.get("CTS_BROWSER", "").strip()
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((p for p in map(shutil.which, BROWSER_CANDIDATES) if p), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_settings(folder: Path) -> None:
    """User settings: no cell windowing (all cells rendered), no news or update checks."""
    tracker = folder / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    notes = folder / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


@dataclass
class Lab:
    url: str
    token: str
    log: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


@contextlib.contextmanager
def jupyterlab(root: Path, env: dict[str, str], startup_timeout: float = 90.0):
    """A JupyterLab server serving `root`; stopped (and its kernels with it) when the block exits."""
    port, token = _free_port(), secrets.token_hex(16)
    state = root.parent / f"jupyter-state-{port}"
    settings = state / "settings"
    _write_settings(settings)
    env = {**os.environ, **env, "JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"), "JUPYTER_RUNTIME_DIR": str(state / "runtime")}
    log = state / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
           "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=False"] + (["--allow-root"] if os.geteuid() == 0 else [])
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not answer within {startup_timeout:.0f} s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield Lab(url, token, log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=10)


@dataclass
class NotebookRun:
    name: str
    seconds: float
    code_cells: int
    errors: list[str] = field(default_factory=list)
    widget_problems: list[str] = field(default_factory=list)
    widgets: int = 0
    figures: int = 0
    screenshot: Path | None = None


CELL_STATE_JS = """() => {
  const prompts = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')];
  return prompts.map(p => p.textContent.trim());
}"""

ERRORS_JS = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const errs = [...panel.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map(e => e.textContent).filter(t => /Traceback|Error\\b|Exception\\b/.test(t));
  return errs.map(t => t.length > 900 ? t.slice(0, 300) + ' [...] ' + t.slice(-600) : t);
}"""

WIDGETS_JS = """(failures) => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const text = panel.innerText;
  return {problems: failures.filter(f => text.includes(f)),
          widgets: panel.querySelectorAll('.jupyter-widgets.widget-container, .jupyter-widgets.widget-slider, .widget-interact').length,
          figures: panel.querySelectorAll('.jp-OutputArea-output img').length};
}"""


def _click_menu(page, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def accept_kernel_dialog(page, wait_ms: int = 4000) -> None:
    """Click "Select" if JupyterLab asks which kernel to start (it offers the notebook's own, python3)."""
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    try:
        dialog.wait_for(timeout=wait_ms)
    except Exception:
        return
    dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    dialog.wait_for(state="detached", timeout=10_000)


def wait_for_kernel_idle(page, timeout: float) -> None:
    """Until the kernel reports idle (the toolbar's execution indicator or the status bar)."""
    page.wait_for_function("""() => {
      const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
      if (ind && ind.getAttribute('data-status')) return ind.getAttribute('data-status') === 'idle';
      return /Idle/.test(document.body.innerText);
    }""", timeout=timeout * 1000)


def run_notebook(page, lab: Lab, name: str, shots: Path, timeout: float | None = None) -> NotebookRun:
    """Open `name`, run all cells through the Run menu, wait until every code cell has run; report."""
    timeout = float(os.environ.get("CTS_BROWSER_TIMEOUT", 600)) if timeout is None else timeout
    t0 = time.monotonic()
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell", timeout=60_000)
    accept_kernel_dialog(page)
    wait_for_kernel_idle(page, 120)
    _click_menu(page, "Run", "Run All Cells")
    deadline = time.monotonic() + timeout
    while True:
        prompts = page.evaluate(CELL_STATE_JS)
        done = prompts and all(p.startswith("[") and p[1:-2].strip().isdigit() for p in prompts)
        errors = page.evaluate(ERRORS_JS)
        if done or errors:
            break
        if time.monotonic() > deadline:
            page.screenshot(path=str(shots / f"{Path(name).stem}-timeout.png"))
            raise TimeoutError(f"{name}: cells still queued or running after {timeout:.0f} s: {prompts} "
                               f"(screenshot {shots / (Path(name).stem + '-timeout.png')}; server log {lab.log})")
        time.sleep(1.0)
    wait_for_kernel_idle(page, 120)
    page.wait_for_timeout(1500)                   # let widget views finish rendering
    seen = page.evaluate(WIDGETS_JS, list(WIDGET_FAILURES))
    shot = shots / f"{Path(name).stem}.png"
    page.screenshot(path=str(shot))
    return NotebookRun(name, time.monotonic() - t0, len(prompts), page.evaluate(ERRORS_JS), seen["problems"],
                       seen["widgets"], seen["figures"], shot)


def errors_within(page, seconds: float) -> list[str]:
    """The open notebook's error outputs, polled until one shows or `seconds` pass.

    A widget callback's traceback is drawn after the figure it printed before raising, so a
    single look right after the figure changed can come too early (CI saw that once).
    """
    deadline = time.monotonic() + seconds
    while True:
        errors = page.evaluate(ERRORS_JS)
        if errors or time.monotonic() > deadline:
            return errors
        page.wait_for_timeout(500)


def first_slider_changes_its_figure(page) -> tuple[bool, str]:
    """Press ArrowRight on the open notebook's first slider; (did the figure its widget drives change, detail)."""
    handle = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    widget = handle.locator("xpath=ancestor::div[contains(@class,'widget-interact')][1]")
    image = widget.locator(".jp-OutputArea-output img, .widget-output img").first
    before = image.get_attribute("src")
    handle.focus()
    for _ in range(3):
        handle.press("ArrowRight")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:             # the output area is cleared and redrawn: re-query each time
        page.wait_for_timeout(500)
        try:
            now = image.get_attribute("src", timeout=1000)
        except Exception:                          # between clear and redraw there is no image
            continue
        if now and now != before:
            return True, "figure redrawn"
    return False, "figure unchanged 30 s after moving the slider"
