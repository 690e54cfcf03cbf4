"""The README's automation, applied from its file to a real Prefect server, fires on a run that
finished with failed images and sends its notification; a clean run does not."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from deployments.automations import AUTOMATIONS, apply_automation
from mori.batch.outcomes import RunSummary
from tasks.events import emit_run_finished
from tests.support.paths import REPO

FILE = AUTOMATIONS / "failed-images.yaml"
README = REPO / "README.md"


class Hook:
    """An HTTP endpoint on loopback that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def hook() -> Iterator[Hook]:
    endpoint = Hook()
    endpoint.thread.start()
    try:
        yield endpoint
    finally:
        endpoint.server.shutdown()
        endpoint.server.server_close()


def test_the_readme_shows_exactly_the_applied_file() -> None:
    assert FILE.read_text(encoding="utf-8").strip() in README.read_text(encoding="utf-8")


def test_a_run_with_failed_images_notifies(prefect_api: Any, support: Any, hook: Hook) -> None:
    from prefect import get_client
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    with get_client(sync_client=True) as client:
        name, action = apply_automation(FILE, client)  # its block does not exist yet
        assert (name, action) == (
            "mori-failed-images",
            "skipped (no block custom-webhook/mori-alerts: create it, then bootstrap again)",
        )
        CustomWebhookNotificationBlock(
            name="mori-alerts",
            url=hook.url,
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        ).save("mori-alerts", overwrite=True)
        assert apply_automation(FILE, client) == (name, "created")
        assert apply_automation(FILE, client) == (name, "unchanged")
        (automation,) = client.read_automations_by_name(name)
    try:
        attempt = 0

        def run_and_listen() -> list[dict[str, Any]]:
            # The server's triggers service takes up a new automation after a moment (longer on
            # a busy machine): a clean and a failing run finish until a notification comes.
            nonlocal attempt
            attempt += 1
            clean = RunSummary(f"clean-{attempt}", rows=3, counts={"processed": 3}, orders=1)
            failing = RunSummary(
                f"failing-{attempt}",
                rows=4,
                counts={"processed": 2, "failed": 2},
                failures={"PROCESSING_FAILED": 2},
                orders=2,
            )
            emit_run_finished(clean)
            emit_run_finished(failing)
            return hook.bodies

        support.wait_for(run_and_listen, 90, interval=5, what="the automation's notification")
        for sent in hook.bodies:  # only failing runs notify
            assert sent["subject"] == "mori-pipeline: 2 of 4 images failed"
            assert "mori.run.failing-" in sent["body"] and "finished: 2 processed" in sent["body"]
            assert "PROCESSING_FAILED" in sent["body"] and "clean-" not in sent["body"]
        executed = support.wait_for(
            lambda: _automation_events(automation.id, "prefect.automation.action.executed"),
            30,
            what="the action's executed event",
        )
        assert 1 <= len(executed) <= attempt
    finally:
        with get_client(sync_client=True) as client:
            client.delete_automation(automation.id)


def _automation_events(automation_id: Any, name: str) -> list[Any]:
    """Events ``name`` of the automation (its resource is ``prefect.automation.<id>``)."""
    from prefect import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    query = EventFilter(
        event=EventNameFilter(name=[name]),
        resource=EventResourceFilter(id=[f"prefect.automation.{automation_id}"]),
    )
    with get_client(sync_client=True) as client:
        return list(client.read_events(filter=query, limit=50).events)
