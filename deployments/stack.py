"""The embedded default: a local S3 endpoint, the MORI emulator and the webhook receiver.

``with LocalStack(workdir) as stack:`` starts all three on loopback ports, registers the
receiver's URL with the emulator (which hands back the webhook secret), and points the usual
environment variables at them (``MORI_API_URL``, ``MORI_API_KEY``, ``MORI_API_GENERATION``,
``MORI_WEBHOOK_SECRET``, ``AWS_ENDPOINT_URL`` and dummy AWS credentials), restoring the
environment on exit. The demo, the end-to-end tests and the benchmarks all run on it, in
either API generation.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from deployments.receiver import Receiver
from mori.emulator.config import EmulatorConfig
from mori.emulator.s3server import LocalS3
from mori.emulator.server import EmulatorServer
from mori.serving import free_port
from mori.settings import Generation, Settings
from tasks.ratelimit import client_for

API_KEY = "demo-key"


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, for ``None``, unset) environment variables for the block; restore them after."""
    saved = {k: os.environ.get(k) for k in values}
    _apply(values)
    try:
        yield
    finally:
        _apply(saved)


def _apply(values: dict[str, str | None]) -> None:
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_files(folder: Path, port: int = 0) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (public URL rows of the demo); yields host:port."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port or free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, name="static-files", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class LocalStack:
    """Everything a run needs, on loopback; use as a context manager."""

    ledger_path: Path
    processing_seconds: float = 1.0
    rpm: int | None = None
    faults: str = ""
    seed: int = 0
    url_hosts: frozenset[str] = frozenset()
    webhooks: bool = True
    #: Orders with these names fail at the emulator (tests of failures and retries).
    fail_order_names: frozenset[str] = frozenset()
    #: The MORI API generation both sides speak (default: ``MORI_API_GENERATION``'s).
    generation: Generation | None = None
    #: Further emulator settings (fault timings, clocks...), as :class:`EmulatorConfig` fields.
    emulator_settings: dict[str, Any] = field(default_factory=dict)
    emulator: EmulatorServer | None = field(default=None, init=False)
    s3: LocalS3 | None = field(default=None, init=False)
    receiver_url: str | None = field(default=None, init=False)
    webhook_secret: str | None = field(default=None, init=False, repr=False)
    _stack: ExitStack = field(default_factory=ExitStack, init=False)

    def __enter__(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _start(self) -> None:
        enter = self._stack.enter_context
        generation = self.generation or Settings().api_generation
        self.s3 = enter(LocalS3())
        config = EmulatorConfig(
            generation=generation,
            api_keys=frozenset({API_KEY}),
            rpm=self.rpm,
            processing_seconds=self.processing_seconds,
            url_allowlist=self.url_hosts,
            faults=self.faults,
            seed=self.seed,
            fail_order_names=self.fail_order_names,
            s3_endpoint_url=self.s3.endpoint_url,
            first_order_id=int(time.time() * 1000),  # ids never repeat across restarts
            **self.emulator_settings,
        )
        self.emulator = enter(EmulatorServer(config))
        enter(
            environment(
                MORI_API_URL=self.emulator.url,
                MORI_API_KEY=API_KEY,
                MORI_API_GENERATION=generation,
                AWS_ENDPOINT_URL=self.s3.endpoint_url,
                AWS_ACCESS_KEY_ID="testing",
                AWS_SECRET_ACCESS_KEY="testing",
                AWS_DEFAULT_REGION="us-east-1",
            )
        )
        if self.webhooks:
            settings = Settings()
            receiver = Receiver(str(self.ledger_path), settings, lambda: self.webhook_secret)
            self._stack.callback(receiver.close)
            self.receiver_url = enter(receiver.running())
            with client_for(settings) as client:
                self.webhook_secret = client.register_webhook(self.receiver_url).secret
            enter(environment(MORI_WEBHOOK_SECRET=self.webhook_secret))

    def stats(self) -> dict[str, Any]:
        """The emulator's ``/_emulator/stats``."""
        assert self.emulator is not None
        return dict(self.emulator.stats())

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()
