"""Running the emulator: the threaded server, its own S3, the blocking ``run()``, storage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import httpx
import pytest

from mori.emulator import EmulatorConfig, EmulatorServer, LocalS3, create_app
from mori.emulator.storage import Storage
from mori.serving import free_port
from tests.support.images import make_image

from .conftest import Api


def test_server_without_s3_endpoint_starts_its_own() -> None:
    with EmulatorServer(EmulatorConfig(processing_seconds=0.05)) as server:
        assert server.url.startswith("http://127.0.0.1:")
        api = Api(server)
        order_id = api.submit({"a.png": make_image("PNG")})
        assert api.wait_finished(order_id)["status"] == "complete"
        assert server.app.state.emulator is server.emulator
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.app


def test_server_on_a_fixed_port(s3: LocalS3) -> None:
    port = free_port()
    config = EmulatorConfig(s3_endpoint_url=s3.endpoint_url, s3_bucket=f"emu-{uuid.uuid4().hex}")
    with EmulatorServer(config, port=port) as server:
        assert server.url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{server.url}/_emulator/stats").status_code == 200


def test_create_app_builds_an_asgi_app(s3: LocalS3) -> None:
    config = EmulatorConfig(s3_endpoint_url=s3.endpoint_url, s3_bucket=f"emu-{uuid.uuid4().hex}")
    app = create_app(config)
    try:
        paths = set(app.openapi()["paths"])
        assert {"/api/v2/orders", "/api/v2/orders/confirm", "/_emulator/stats"} <= paths
    finally:
        app.state.emulator.close()


def test_run_serves_until_interrupted() -> None:
    port = free_port()
    code = (
        "from mori.emulator import EmulatorConfig, run; "
        f"run(EmulatorConfig(api_keys=frozenset({{'k'}})), port={port})"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/api/v2/webhook", headers={"Authorization": "Bearer k"}
                )
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert response.json()["data"] == {"url": None}
    finally:
        os.kill(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output.decode()


def test_storage_wrapper(s3: LocalS3) -> None:
    storage = Storage.connect(s3.endpoint_url, f"emu-{uuid.uuid4().hex}")
    storage.ensure_bucket()  # idempotent
    assert not storage.exists("a/b.bin")
    storage.put("a/b.bin", b"\x00data")
    assert storage.exists("a/b.bin")
    assert storage.get("a/b.bin") == b"\x00data"
    with pytest.raises(KeyError):
        storage.get("missing")
    assert s3.client().get_object(Bucket=storage.bucket, Key="a/b.bin")["Body"].read()


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"api_keys": frozenset()}, "api_keys"),
        ({"rpm": 0}, "rpm"),
        ({"processing_seconds": -1}, "processing_seconds"),
        ({"processing_workers": 0}, "processing_workers"),
        ({"webhook_retry_delays": (1.0, -1.0)}, "webhook_retry_delays"),
        ({"generation": "g2"}, "generation"),
        ({"processing_mode": "fast"}, "processing_mode"),
        ({"token_ttl": 0}, "token_ttl"),
        ({"usage_limit": -1}, "usage_limit"),
        ({"logins": {"a@example.com": ""}}, "logins"),
        ({"logins": {"a@example.com": "x", "A@example.com": "y"}}, "given twice"),
    ],
)
def test_config_rejects_impossible_settings(settings: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        EmulatorConfig(**settings)  # type: ignore[arg-type]
