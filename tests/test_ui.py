"""The web view and the report in a real browser: Debian's Chromium driven by Playwright
(which uses the system's browser; nothing is downloaded). Screenshots go to each run's
directory and to runs/ci-artifacts/screenshots/ (CI keeps them); with
RAYEVOLVE_SCREENSHOTS=DIR (`make screenshots`) also to DIR, the ones docs/ shows."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rayevolve import analysis, report
from tests.conftest import INTERVAL, ROOT, interruptible

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)"),
]
ARTIFACTS = ROOT / "runs" / "ci-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


class Page:
    """A page that records console errors, uncaught exceptions and any request that leaves
    this machine (the view must work offline)."""

    def __init__(self, browser, width: int = 1300):
        self.page = browser.new_page(viewport={"width": width, "height": 1000})
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on(
            "request",
            lambda r: (
                None
                if r.url.startswith(("http://127.0.0.1", "file://", "data:"))
                else self.outside.append(r.url)
            ),
        )

    def shot(self, name: str, *folders: Path) -> None:
        targets = [*folders, ARTIFACTS]
        if os.environ.get("RAYEVOLVE_SCREENSHOTS"):
            targets.append(Path(os.environ["RAYEVOLVE_SCREENSHOTS"]))
        first = None
        for folder in targets:
            folder.mkdir(parents=True, exist_ok=True)
            if first is None:
                first = folder / f"{name}.png"
                self.page.screenshot(path=str(first), full_page=True)
            else:
                shutil.copyfile(first, folder / f"{name}.png")
        assert first.read_bytes().startswith(b"\x89PNG")

    def clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.outside == [], self.outside
        self.page.close()


def _url(process: subprocess.Popen, pattern: str, timeout_s: float = 120) -> str:
    """The first URL matching `pattern` that `process` prints on stderr; its stderr is
    drained from then on (a full pipe would block the process in a write)."""
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        found = re.search(pattern + r"(http://127\.0\.0\.1:\d+/)", line)
        if found:
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return found.group(1)
    raise AssertionError("no URL printed:\n" + "".join(seen[-30:]))


def _evaluations(page) -> int:
    text = page.inner_text("#status")
    found = re.search(r"(\d+) evaluations", text)
    return int(found.group(1)) if found else -1


def test_live_view_of_a_running_run_updates_and_walks_the_lineage(ray_cluster, browser, tmp_path):
    """ui.port serves the view from the driver: it follows the run as it writes, and a
    click walks from the best program to the initial one; the seed-to-best diff is shown."""
    cluster, _ = ray_cluster
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rayevolve",
            "progress=false",
            "ui.port=0",
            "ui.refresh_s=0.5",
            "stop.max_evaluations=100000",
            "islands.count=2",  # light, so the browser is not starved on two cores
            "stop.max_wall_s=240",
            f"run_dir={run_dir}",
            f"cluster.address={cluster.address}",
        ],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        url = _url(process, "live view of this run at ")
        page = Page(browser)
        page.page.goto(url)
        page.page.wait_for_function(
            "() => /[1-9]\\d* evaluations/.test(document.querySelector('#status')?.innerText)",
            timeout=120_000,
        )
        first = _evaluations(page.page)
        page.page.wait_for_function(
            "n => +(/(\\d+) evaluations/.exec(document.querySelector('#status')?.innerText)||[0,0])[1] > n",
            arg=first,
            timeout=120_000,
        )
        assert _evaluations(page.page) > first and "live" in page.page.inner_text("#status")
        # the view follows the best program: wait for one better than the initial program
        page.page.wait_for_function(
            "() => (document.querySelector('#seed-to-best-diff')?.innerText || '')"
            ".startsWith('--- initial program')",
            timeout=120_000,
        )
        page.page.wait_for_selector("#program-title", timeout=60_000)
        # the population views on a single run too: the table, the grids, the legend
        page.page.wait_for_selector(
            "#programs-table td[data-dash-column='program']", timeout=60_000
        )
        page.page.wait_for_function(
            "() => (document.querySelector('#grids')?.innerText || '').includes('MAP-Elites grid')",
            timeout=60_000,
        )
        assert "migration" in page.page.inner_text("#lineage-legend")
        page.shot("live-view", run_dir / "screenshots")
        # from the best program, parent by parent, to the initial program
        for _ in range(1000):
            title = page.page.inner_text("#program-title")
            if title.startswith("initial program"):
                break
            assert page.page.is_enabled("#to-parent"), title
            page.page.click("#to-parent")
            page.page.wait_for_function(
                "t => (document.querySelector('#program-title')?.innerText || t) != t",
                arg=title,
                timeout=30_000,
            )
        assert page.page.inner_text("#program-title").startswith("initial program")
        assert page.page.is_disabled("#to-parent")
        diff = page.page.inner_text("#seed-to-best-diff")
        assert diff.startswith("--- initial program") and "\n+" in diff
        assert page.page.locator("#seed-to-best-diff .d-add").count() > 0
        page.clean()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
    assert (run_dir / "summary.json").is_file()  # interrupted, yet flushed and summarised


def test_sweep_view_has_one_row_per_varying_setting(sweep, browser, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "rayevolve.ui", str(sweep), "--port", "0"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _url(process, "rayevolve ui: ", timeout_s=60)
        page = Page(browser)
        page.page.goto(url)
        page.page.wait_for_selector("#sweep-table tbody tr", timeout=60_000)
        header = page.page.inner_text("#sweep-table thead")
        rows = page.page.locator("#sweep-table tbody tr")
        assert rows.count() == 2  # migration interval 5 and 10, two seeds each
        assert INTERVAL in header and "islands.count" not in header and "seed" not in header
        cells = [rows.nth(i).locator("td").first.inner_text() for i in range(2)]
        assert cells == ["5", "10"]  # numbers in numeric order
        assert "4 run(s)" in page.page.inner_text("#status")
        page.page.wait_for_selector("#program-title", timeout=60_000)
        page.shot("sweep-view", sweep / "screenshots")
        page.clean()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_reports_render_in_the_browser_without_errors(sweep, browser, tmp_path):
    best_run = analysis.best_program(analysis.load(sweep))["run"]  # it has a diff to show
    one_run = sweep / best_run
    for name, path in (("report-run", one_run), ("report-sweep", sweep)):
        html_file = report.build(path, tmp_path / name)
        page = Page(browser, width=1150)
        page.page.goto(html_file.as_uri())
        assert page.page.locator("img").count() >= 4
        assert page.page.locator("pre.diff .add").count() > 0  # the coloured seed-to-best diff
        page.shot(name, path / "screenshots")
        page.clean()


def test_the_whole_population_opens_in_the_browser(sweep, browser):
    """The program table (sorted best first, a click opens the program), the whole
    population's tree with its legend, any metric over time, each island's MAP-Elites
    grid and a diff of two programs: on a sweep, with no console error and no request
    off the machine."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rayevolve.ui", str(sweep), "--port", "0"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _url(process, "rayevolve ui: ", timeout_s=60)
        page = Page(browser)
        page.page.goto(url)
        cells = page.page.locator("#programs-table td[data-dash-column='program']")
        cells.first.wait_for(timeout=60_000)
        assert cells.count() == 20  # a page of the run's programs
        scores = page.page.locator("#programs-table td[data-dash-column='score']")
        shown = [float(scores.nth(i).inner_text() or "nan") for i in range(3)]
        assert shown == sorted(shown, reverse=True)  # best first
        page.page.wait_for_selector("#program-title", timeout=60_000)  # the best, shown
        picked = cells.nth(2).inner_text()
        cells.nth(2).click()
        page.page.wait_for_function(
            "id => (document.querySelector('#program-title')?.innerText || '').includes(id)",
            arg=picked,
            timeout=60_000,
        )
        assert "migration" in page.page.inner_text("#lineage-legend")
        page.page.click("text=whole population")
        page.page.wait_for_function(
            "() => (document.querySelector('#lineage')?.innerText || '')"
            ".includes('The whole population')",
            timeout=60_000,
        )
        page.page.wait_for_function(
            "() => (document.querySelector('#pair-diff')?.innerText || '').startsWith('---')",
            timeout=60_000,
        )
        assert "score over the run" in page.page.inner_text("#metric-figure")
        page.page.wait_for_function(
            "() => /island 0[\\s\\S]*island 1/.test(document.querySelector('#grids')?.innerText || '')",
            timeout=60_000,
        )
        page.shot("population-view", sweep / "screenshots")
        page.clean()
    finally:
        process.terminate()
        process.wait(timeout=30)
