"""The receiver's Prefect hook without a server: what it asks Prefect, and registration."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from deployments.receiver import (
    DEPLOYMENT,
    FinalizeDispatcher,
    idempotency_key,
    register,
    secret_source,
)
from mori.client import MoriClient
from mori.emulator.config import EmulatorConfig
from mori.emulator.server import EmulatorServer
from mori.models import WebhookEvent
from mori.settings import Settings


def _event(order_id: str, event_type: str = "ORDER.ANTI_AI.PROCESSED") -> WebhookEvent:
    return WebhookEvent.model_validate_json(
        json.dumps(
            {
                "eventId": str(uuid.uuid4()),
                "eventType": event_type,
                "data": {"orderId": order_id, "status": "complete"},
            }
        )
    )


class FakePrefect:
    """Flow runs unique on the idempotency key, like Prefect's server."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.runs: dict[str, UUID] = {}
        self.fail_first = fail_first

    def __call__(self, deployment: str, parameters: dict[str, Any], key: str) -> UUID:
        self.calls.append((deployment, parameters, key))
        if len(self.calls) <= self.fail_first:
            raise ConnectionError("prefect is down")
        return self.runs.setdefault(key, uuid.uuid4())


def test_every_event_asks_prefect_with_the_order_key() -> None:
    fake = FakePrefect()
    hook = FinalizeDispatcher(parameters={"audit": "/a"}, starter=fake)
    hook(_event("101"), True)
    hook(_event("101"), False)  # a duplicate delivery (same eventId)
    hook(_event("101", "ORDER.PROCESSED"), True)  # a resend with a new eventId
    hook(_event("102"), True)
    hook.drain()
    hook.close()

    assert [c[2] for c in fake.calls] == [idempotency_key(o) for o in ("101", "101", "101", "102")]
    assert fake.calls[0] == (DEPLOYMENT, {"audit": "/a", "order_id": "101"}, "finalize-101")
    assert len(fake.runs) == 2
    assert hook.started == {"101": fake.runs["finalize-101"], "102": fake.runs["finalize-102"]}


def test_a_failed_start_is_logged_and_the_next_delivery_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakePrefect(fail_first=1)
    hook = FinalizeDispatcher(starter=fake)
    hook(_event("7"), True)
    hook.drain()
    assert hook.failures == 1 and hook.started == {}
    assert "could not start" in caplog.text
    hook(_event("7"), False)
    hook.drain()
    hook.close()
    assert set(hook.started) == {"7"}


def test_register_stores_the_secret_privately(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EmulatorConfig(api_keys=frozenset({"k"}), processing_seconds=0)
    with EmulatorServer(config) as emulator, MoriClient(emulator.url, "k") as client:
        path = register(
            "https://hooks.example.com/webhooks/mori", tmp_path / "s" / "secret", Settings(), client
        )
        assert client.get_webhook().url == "https://hooks.example.com/webhooks/mori"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    secret = path.read_text()
    assert len(secret) >= 32
    monkeypatch.delenv("MORI_WEBHOOK_SECRET", raising=False)
    assert secret_source(Settings(), path)() == secret
    assert secret_source(Settings(), tmp_path / "missing")() is None
    monkeypatch.setenv("MORI_WEBHOOK_SECRET", "from-env")
    assert secret_source(Settings(), path)() == "from-env"


def test_receiver_command_needs_a_ledger_and_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from deployments.receiver import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    monkeypatch.delenv("MORI_LEDGER_PATH", raising=False)
    monkeypatch.delenv("MORI_WEBHOOK_SECRET", raising=False)
    assert run(parser.parse_args([])) == 1
    assert "give --ledger or --audit" in capsys.readouterr().err
    assert run(parser.parse_args(["--audit", str(tmp_path / "audit")])) == 1
    assert "no webhook secret" in capsys.readouterr().err
