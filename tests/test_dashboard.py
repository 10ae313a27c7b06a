"""``ai-scratch dashboard``: a static site of real local fits, checked in a real headless Chromium.

Two tiny real fits of the Perceptron (two epochs each, figures on), a capability matrix and a
module comparison in the formats that ``ai-scratch compare`` writes, then the site built from
them, once for the whole session (the xdist workers share it), and opened with Playwright's sync
API in the Debian ``chromium``, offline: every page loads without a console error or a failed
request and fetches nothing but its own files, the charts draw, every link leads to a page that
exists, no page scrolls sideways on a 390 px wide phone, and the index is photographed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from filelock import FileLock

from ai_scratch import dashboard
from ai_scratch.cli import main as ai_scratch

EXPERIMENTS = ("perceptron/xor_weakness", "perceptron/linear_strength")
TINY = ["--trainer.max_epochs=2", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
MATRIX = "model,linear,xor,mnist\nperceptron,1.0,0.5,\nlenet5,,,0.991\n"


# ---------------------------------------------------------------------- the site, built once
def build_site(root: Path) -> Path:
    """Fit the two experiments into ``root/runs``, add a matrix and a module-1 comparison in the
    formats their commands write (figures borrowed from the fits), build the dashboard."""
    runs = root / "runs"
    for name in EXPERIMENTS:
        ai_scratch(["fit", "--config", name, *TINY, f"--trainer.default_root_dir={runs}"])
    figure = next(runs.glob("perceptron/xor_weakness/version_0/figures/*.png"))
    history = runs / "comparisons" / "history"
    history.mkdir(parents=True)
    (history / "matrix.csv").write_text(MATRIX)
    shutil.copyfile(figure, history / "history.png")
    module_1 = runs / "comparisons" / "module-1"
    module_1.mkdir(parents=True)
    shutil.copyfile(figure, module_1 / "linear_vs_nonlinear.png")
    (module_1 / "accuracies.json").write_text(json.dumps({"seed": 0, "val_accuracy": {"perceptron/xor": 0.5}}))
    return dashboard.build(runs, runs / "dashboard", models=["perceptron"])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site's ``index.html``, built by the first worker that asks and reused by the others."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "dashboard-site"
    with FileLock(f"{shared}.lock"):
        index = shared / "runs" / "dashboard" / "index.html"
        if not index.is_file():
            shared.mkdir(exist_ok=True)
            assert build_site(shared) == index
    return index


# ---------------------------------------------------------------------- the browser
def chromium_executable() -> str | None:
    """The Debian ``chromium``; installed with apt-get where it is missing and this is root."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    with FileLock("/tmp/ai-scratch-apt-chromium.lock"):
        if shutil.which("chromium") is None:
            quiet = {"capture_output": True, "timeout": 900, "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
            installed = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], **quiet)
            if installed.returncode != 0:  # a machine whose package lists were never read
                subprocess.run(["apt-get", "update", "-q"], **quiet)
                subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], **quiet)
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no Chromium: apt-get install chromium (the tests install it themselves when run as root)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable)
        yield launched
        launched.close()


class Visit:
    """A page opened offline at one viewport, with what went wrong while it loaded."""

    def __init__(self, browser: Any, path: Path, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport, offline=True)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("requestfailed", lambda request: self.errors.append(f"failed: {request.url} {request.failure}"))
        self.page.on("request", lambda request: self.requests.append(request.url))
        response = self.page.goto(path.as_uri(), wait_until="load")
        assert response is None or response.ok, path

    def __enter__(self) -> Visit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.context.close()


def pages(site: Path) -> list[Path]:
    return sorted(site.parent.glob("*.html"))


#: What a visit reads from a loaded page: its images, its links, its width, and each chart's traces.
READ_PAGE = """() => ({
    images: [...document.images].map(image => [image.getAttribute("src"), image.complete ? image.naturalWidth : 0]),
    links: [...document.querySelectorAll("a[href]")].map(link => link.href),
    width: [document.documentElement.scrollWidth, window.innerWidth],
    charts: [...document.querySelectorAll(".chart")].map(chart => ({
        family: chart.dataset.family,
        drawn: chart.classList.contains("js-plotly-plot"),
        lines: [...chart.querySelectorAll(".scatterlayer .trace path.js-line")].map(line => (line.getAttribute("d") || "").length),
        legend: [...chart.querySelectorAll(".legendtext")].map(text => text.textContent),
        text: chart.textContent,
    })),
})"""


@pytest.fixture(scope="module")
def on_a_phone(browser: Any, site: Path) -> dict[str, dict[str, Any]]:
    """Every page, loaded once on a 390 x 844 screen, offline: what it shows and what went wrong."""
    seen = {}
    for path in pages(site):
        with Visit(browser, path, PHONE) as visit:
            if path.name.startswith("run-"):  # plotly draws after the load event
                visit.page.wait_for_function("() => [...document.querySelectorAll('.chart')].every(chart => chart.querySelector('.main-svg'))")
            seen[path.name] = {**visit.page.evaluate(READ_PAGE), "errors": visit.errors, "requests": visit.requests}
    return seen


# ---------------------------------------------------------------------- the tests
def test_the_site_has_an_index_a_module_page_and_a_page_per_run(site: Path) -> None:
    names = [path.name for path in pages(site)]
    assert names == ["index.html", "insights-1.html", "module-1.html", "run-perceptron.linear_strength.version_0.html", "run-perceptron.xor_weakness.version_0.html"]
    assert (site.parent / "assets" / "plotly.min.js").stat().st_size > 1_000_000  # the whole library, once
    for path in pages(site):
        text = path.read_text()
        assert "://" not in text, f"{path.name} names an address"
        if path.name.startswith("run-"):
            assert '<script src="assets/plotly.min.js">' in text


def test_every_page_loads_offline_without_errors_and_its_images_show(site: Path, on_a_phone: dict[str, dict[str, Any]]) -> None:
    for name, seen in on_a_phone.items():
        assert seen["errors"] == [], name
        outside = [url for url in seen["requests"] if not url.startswith(site.parent.as_uri() + "/")]
        assert outside == [], f"{name} fetched {outside}"
        assert all(width > 0 for _, width in seen["images"]), (name, seen["images"])
        assert seen["images"] or name.startswith("insights-"), name  # the insight report is a table
        if name.startswith("run-"):  # the Perceptron's figures: decision boundary, confusion matrix, learning curves
            assert len(seen["images"]) == 3


def test_each_run_page_draws_its_metric_charts(on_a_phone: dict[str, dict[str, Any]]) -> None:
    runs = {name: seen for name, seen in on_a_phone.items() if name.startswith("run-")}
    assert len(runs) == len(EXPERIMENTS)
    for name, seen in runs.items():
        charts = {chart["family"]: chart for chart in seen["charts"]}
        assert list(charts)[:2] == ["loss", "accuracy"], name
        for family, chart in charts.items():
            assert chart["drawn"] and chart["lines"] and all(length > 10 for length in chart["lines"]), (name, family)
        assert sorted(charts["loss"]["legend"]) == ["train_loss", "val_loss"]
        assert sorted(charts["accuracy"]["legend"]) == ["train_accuracy", "val_accuracy"]
        assert "claim: val_accuracy" in charts["accuracy"]["text"]  # the claim's threshold, drawn where its metric is


def test_every_link_of_the_index_and_the_module_page_leads_to_a_page_of_the_site(site: Path, on_a_phone: dict[str, dict[str, Any]]) -> None:
    for name in ("index.html", "module-1.html"):
        links = on_a_phone[name]["links"]
        assert len(links) >= 4, name
        for href in links:
            target = urlparse(href)
            assert target.scheme == "file", href
            path = Path(unquote(target.path))
            assert path.is_file() and path.is_relative_to(site.parent), f"{name}: {href}"
            if target.fragment:
                assert f'id="{target.fragment}"' in path.read_text(), f"{name}: {href}"
    reached = {Path(unquote(urlparse(href).path)).name for href in on_a_phone["index.html"]["links"]}
    assert {path.name for path in pages(site)} <= reached  # every page, every run's included, from the index


def test_no_page_scrolls_sideways_on_a_phone(on_a_phone: dict[str, dict[str, Any]]) -> None:
    for name, seen in on_a_phone.items():
        width, screen = seen["width"]
        assert screen == PHONE["width"] and width <= screen, f"{name}: {width} px wide on a {screen} px screen"


def test_the_index_shows_the_matrix_and_the_claims_and_is_photographed(browser: Any, site: Path, tmp_path: Path) -> None:
    with Visit(browser, site, DESKTOP) as visit:
        page = visit.page
        matrix = page.locator("table.matrix")
        assert matrix.locator("thead th").all_inner_texts() == ["model", "linear", "xor", "mnist"]
        assert matrix.locator("tbody tr").first.locator("td").all_inner_texts() == ["perceptron", "1", "0.5", "–"]
        claims = {row.locator("td").first.inner_text().split()[0]: row.inner_text() for row in page.locator("table.claims tbody tr:has(td)").all()}
        assert set(claims) == {"circles_weakness", "iris_strength", "linear_strength", "xor_weakness"}
        assert "reproduced" in claims["linear_strength"] and "not fitted" in claims["iris_strength"]
        page.screenshot(path=tmp_path / "index-desktop.png", full_page=True)
        page.set_viewport_size(PHONE)
        page.screenshot(path=tmp_path / "index-phone.png", full_page=True)
    for shot in ("index-desktop.png", "index-phone.png"):
        assert (tmp_path / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_module_page_shows_its_comparison(browser: Any, site: Path) -> None:
    with Visit(browser, site.parent / "module-1.html", DESKTOP) as visit:
        text = visit.page.locator("#comparison").evaluate("heading => heading.parentElement.innerText")
    assert "accuracies.json" in text and "val_accuracy/perceptron/xor" in text


def test_the_insight_report_sets_each_claim_beside_its_paper(browser: Any, site: Path) -> None:
    markdown = (site.parent / "insights" / "module-1.md").read_text()
    assert markdown.startswith("# Module 1: foundations") and "of 2 claims fitted here reproduced (4 claims in all)" in markdown.splitlines()[2]
    with Visit(browser, site.parent / "insights-1.html", PHONE) as visit:
        rows = {row.locator("td").first.inner_text().split()[0]: row.locator("td").all_inner_texts() for row in visit.page.locator("tbody tr").all()}
        assert visit.errors == []
    # every claim of the site's model, the two fitted ones with what they observed and their margin
    assert set(rows) == {"perceptron/linear_strength", "perceptron/xor_weakness", "perceptron/iris_strength", "perceptron/circles_weakness"}
    linear = rows["perceptron/linear_strength"]
    assert linear[-1] == "reproduced" and float(linear[4]) >= 0 and linear[2] == "val_accuracy >= 0.97" and linear[1]
    assert rows["perceptron/iris_strength"][-1] == "not fitted" and rows["perceptron/iris_strength"][3] == "–"


# ---------------------------------------------------------------------- without a browser
def test_metric_families_group_the_stages_of_a_metric() -> None:
    assert dashboard.metric_family("val_accuracy") == ("accuracy", "val")
    assert dashboard.metric_family("train_loss_epoch") == ("loss", "train")
    assert dashboard.metric_family("test/psnr") == ("psnr", "test")
    assert dashboard.metric_family("learning_rate") == ("learning_rate", "")
    rows = [
        {"epoch": "0", "step": "0", "val_accuracy": "0.5", "train_loss": "", "grad_norm": "", "claim/observed": ""},
        {"epoch": "0", "step": "0", "val_accuracy": "", "train_loss": "0.7", "grad_norm": "nan", "claim/observed": ""},
        {"epoch": "", "step": "1", "val_accuracy": "", "train_loss": "", "grad_norm": "", "claim/observed": "0.5"},
    ]
    # loss before accuracy; a metric that never held a number and the claim's columns are not charted
    assert dashboard.metric_families(rows) == {"loss": ["train_loss"], "accuracy": ["val_accuracy"]}


def test_a_comparison_json_reads_as_a_table() -> None:
    assert dashboard.json_table({"seed": 0, "acc": {"a": 0.5, "b": None}}) == {
        "columns": ["key", "value"], "rows": [["seed", "0"], ["acc/a", "0.5"], ["acc/b", "–"]],
    }  # fmt: skip
    assert dashboard.json_table([{"run": "x", "ok": True}, {"run": "y", "seconds": 1.25}]) == {
        "columns": ["run", "ok", "seconds"], "rows": [["x", "yes", "–"], ["y", "–", "1.25"]],
    }  # fmt: skip
    assert dashboard.json_table("text") is None


def test_a_missing_runs_folder_is_one_line_and_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ended:
        dashboard.main(["--runs_dir", str(tmp_path / "nowhere")])
    assert ended.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "nowhere" in error and "ai-scratch fit" in error
    assert not (tmp_path / "nowhere").exists()


def test_a_folder_that_is_not_a_dashboard_is_never_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "runs").mkdir()
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep me")
    with pytest.raises(SystemExit) as ended:
        dashboard.main(["--runs_dir", str(tmp_path / "runs"), "--out", str(notes)])
    assert ended.value.code == 2
    assert "--out" in capsys.readouterr().err and (notes / "mine.txt").read_text() == "keep me"


def test_reports_without_a_wandb_login_keep_the_site_and_say_why_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("wandb_workspaces", reason="the reports extra (pip install 'ai-scratch[reports]')")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no wandb settings
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    (tmp_path / "runs").mkdir()
    with pytest.raises(SystemExit) as ended:
        ai_scratch(["dashboard", "--runs_dir", str(tmp_path / "runs"), "--models", "perceptron", "--wandb"])
    assert ended.value.code == 1
    captured = capsys.readouterr()
    error = captured.err.strip().splitlines()
    assert len(error) == 1 and "the site is built" in error[0] and "wandb login" in error[0], error
    assert "pages in" in captured.out and (tmp_path / "runs" / "dashboard" / "index.html").is_file()
    assert (tmp_path / "runs" / "dashboard" / "insights" / "module-1.md").is_file()
