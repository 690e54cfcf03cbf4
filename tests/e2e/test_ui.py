"""The Prefect UI, driven by a headless browser: a custom ``protect`` run from its deployment page.

A real ``prefect server start`` (session fixture), ``mori-pipeline bootstrap``, ``prefect deploy
--all`` from this repository's ``prefect.yaml``, a ``prefect worker`` on the process pool and
the local MORI emulator + S3. Playwright drives Debian's chromium (``/usr/bin/chromium``; never
``playwright install``): Deployments -> protect -> Run -> Custom run -> set the manifest, the
audit folder and the order size -> Submit -> the run completes -> its Artifacts show the summary.
A screenshot and the page's HTML are kept under the test's tmp folder when it fails.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deployments.bootstrap import HOME_VARIABLE, bootstrap
from deployments.stack import LocalStack
from mori.batch.ledger import ledger_location
from mori.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
WORKER = ["worker", "start", "--pool", "mori-pool", "--type", "process"]
IMAGES, ORDER_SIZE = 5, 2
RUN_TIMEOUT_MS = 150_000

pytestmark = [
    pytest.mark.slow,
    # skipped on a machine without chromium, unless CI says it must run (.ci/run sets it)
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("MORI_REQUIRE_BROWSER"),
        reason="needs Debian's chromium: apt-get install -y chromium",
    ),
]


def _set_home_variable(repo: Path) -> None:
    """Point the pull step at this checkout (an earlier test may have set another folder)."""
    from prefect import get_client
    from prefect.client.schemas.actions import VariableUpdate

    with get_client(sync_client=True) as client:
        client.update_variable(VariableUpdate(name=HOME_VARIABLE, value=str(repo)))


def _deploy(support: Any, env: dict[str, str]) -> None:
    out = support.run_cli(
        [str(support.BIN / "prefect"), "--no-prompt", "deploy", "--all"], env, timeout=180
    )
    for name in ("protect", "protect-orders", "finalize", "reconcile", "report"):
        assert f"Deployment '{name}/{name}' successfully created" in re.sub(r"\s+", " ", out), out


@pytest.fixture
def browser_page(tmp_path: Path, prefect_server: Any) -> Iterator[Any]:
    """A headless chromium page that may only talk to the Prefect server."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        local = (prefect_server.url, "data:", "blob:")
        page.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith(local) else route.abort()
            ),
        )
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            browser.close()


def test_custom_protect_run_from_the_ui(
    prefect_api: Any,
    processes: Any,
    support: Any,
    tmp_path: Path,
    browser_page: Any,
    request: pytest.FixtureRequest,
) -> None:
    from playwright.sync_api import expect

    page = browser_page
    server = prefect_api
    work = tmp_path / "ui"
    manifest = support.make_manifest(work, IMAGES, seed=23)
    audit = work / "ui-audit"

    bootstrap(600)
    _set_home_variable(support.REPO)
    _deploy(support, server.env())

    with LocalStack(
        Path(ledger_location(str(audit), Settings())), processing_seconds=0.3, webhooks=False
    ):
        processes.start(
            "worker",
            [str(support.BIN / "prefect"), *WORKER],
            support.stack_env(server),
        )
        try:
            page.goto(server.url)
            page.get_by_role("link", name="Deployments").first.click()
            page.get_by_placeholder("Search deployments").fill("protect")
            # wait until the list is filtered (it re-renders), then open the deployment
            expect(page.get_by_role("link", name="finalize", exact=True)).to_have_count(0)
            deployment_link = page.locator("a[href*='/deployments/deployment/']")
            deployment_link.get_by_text("protect", exact=True).first.click()
            expect(page).to_have_url(re.compile(r"/deployments/deployment/[0-9a-f-]+"))
            page.get_by_role("button", name="Run", exact=True).first.click()
            page.get_by_role("menuitem", name="Custom run").click()

            # the form re-renders as it is edited: look every field up again
            _fill(_field(page, "manifest (Optional)"), str(manifest))
            _fill(_field(page, "output (Optional)"), str(work / "output"))
            _fill(_field(page, "audit (Optional)"), str(audit))
            _fill(_field(page, "order_size (Optional)"), str(ORDER_SIZE))
            _submit(page)

            expect(page.get_by_text("protect manifest.csv").first).to_be_visible(
                timeout=RUN_TIMEOUT_MS
            )
            _wait_for_state(page, "Completed")
            page.get_by_role("tab", name="Artifacts").click()
            expect(page.get_by_text("protect-summary").first).to_be_visible(timeout=30_000)
            page.screenshot(path=str(processes.logs / "artifacts.png"), full_page=True)
            page.get_by_text("protect-summary").first.click()  # the summary itself
            expect(page.get_by_text("Orders driven:").first).to_be_visible(timeout=30_000)
        except BaseException:
            _keep_evidence(page, request.node.name, processes)
            raise

    assert len(list((work / "output").iterdir())) == IMAGES
    assert (audit / "images").is_dir()
    _check_run_in_api(server, manifest)


def _field(page: Any, label: str) -> Any:
    """The text box of a parameter: labels of optional (``anyOf``) parameters point nowhere,
    so find the nearest block around the label that holds an input."""
    block = page.locator(
        f"xpath=//label[normalize-space()='{label}']"
        "/ancestor::div[.//textarea or .//input[not(@type='hidden')]][1]"
    )
    return block.locator("textarea, input:not([type=hidden])").first


def _submit(page: Any, attempts: int = 3) -> None:
    """Submit the run form and open the new run. A Prefect server on SQLite answers 503 when
    its database is busy (the UI then shows "Unknown error while creating flow run" and
    created nothing); a user would press Submit again, and so does this."""
    from playwright.sync_api import Error

    view_run = page.get_by_role("link", name="View run").or_(
        page.get_by_role("button", name="View run")
    )
    for attempt in range(attempts):
        page.get_by_role("button", name="Submit").click()
        try:
            view_run.first.click(timeout=15_000)
            return
        except Error:
            if attempt == attempts - 1:
                raise


def _fill(locator: Any, value: str) -> None:
    locator.click()
    locator.fill(value)
    locator.blur()


def _wait_for_state(page: Any, state: str) -> None:
    """Wait for the run page's state badge to say ``state``; reload now and then in case the
    page stopped polling."""
    import time

    from playwright.sync_api import Error, expect

    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while True:
        try:
            expect(page.get_by_text(state, exact=True).first).to_be_visible(timeout=20_000)
            return
        except (AssertionError, Error):
            pass
        for bad in ("Failed", "Crashed", "Cancelled"):
            if page.get_by_text(bad, exact=True).first.is_visible():
                raise AssertionError(f"the run ended {bad}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the run never reached {state}")
        page.reload()


def _check_run_in_api(server: Any, manifest: Path) -> None:
    """The run the UI started ran the deployment with the custom parameters and artifacts."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowFilter,
        FlowFilterName,
    )

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["protect"])))
        ours = [r for r in runs if r.parameters.get("manifest") == str(manifest)]
        assert len(ours) == 1 and ours[0].state_name == "Completed"
        run = ours[0]
        assert run.parameters["order_size"] == ORDER_SIZE and run.deployment_id is not None
        assert run.name == "protect manifest.csv"
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    keys = {a.key for a in artifacts}
    assert {"protect-summary", "protect-audit"} <= keys, keys
    assert any(a.type == "progress" for a in artifacts)


def _keep_evidence(page: Any, name: str, processes: Any) -> None:
    """Screenshot, HTML and the worker's log beside the test's logs, for the CI artifacts."""
    folder = processes.logs
    folder.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        (folder / f"{name}.html").write_text(page.content(), encoding="utf-8")
    except Exception as exc:  # the page itself may be gone
        print(f"could not keep a screenshot: {exc}", file=sys.stderr)
    print(f"evidence kept in {folder}", file=sys.stderr)
    print(processes.log_text("worker")[-4000:], file=sys.stderr)
