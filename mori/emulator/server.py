"""Running the emulator: :class:`EmulatorServer` in a background thread, or :func:`run` blocking."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI

from mori.emulator.app import create_app
from mori.emulator.config import EmulatorConfig
from mori.emulator.core import Emulator
from mori.emulator.s3server import LocalS3

_THREAD_TIMEOUT = 15.0
_GRACEFUL_SHUTDOWN = 2


class EmulatorServer:
    """``with EmulatorServer(config) as server:`` serves the emulator at ``server.url``.

    Without ``config.s3_endpoint_url`` the server starts (and later stops) its own
    :class:`LocalS3`. ``port=0`` picks a free port.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port
        self._s3: LocalS3 | None = None
        self._emulator: Emulator | None = None
        self._app: FastAPI | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:49152`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def app(self) -> FastAPI:
        """The running ASGI app."""
        if self._app is None:
            raise RuntimeError("the emulator server is not started")
        return self._app

    @property
    def emulator(self) -> Emulator:
        """The running emulator's state."""
        if self._emulator is None:
            raise RuntimeError("the emulator server is not started")
        return self._emulator

    def stats(self) -> dict[str, Any]:
        """The same counters as ``GET /_emulator/stats``, read directly."""
        return self.emulator.snapshot()

    def start(self) -> EmulatorServer:
        """Start S3 (if needed), the emulator and uvicorn; return once it accepts requests."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving, end hanging requests and background work, stop an owned S3."""
        if self._emulator is not None:
            self._emulator.begin_shutdown()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(_THREAD_TIMEOUT)
        if self._emulator is not None:
            self._emulator.close()
        if self._s3 is not None:
            self._s3.stop()
        self._server = self._thread = self._emulator = self._app = self._s3 = None

    def _start(self) -> None:
        """The steps of :meth:`start`."""
        config = self.config
        if config.s3_endpoint_url is None:
            self._s3 = LocalS3().start()
            config = dataclasses.replace(config, s3_endpoint_url=self._s3.endpoint_url)
        self._emulator = Emulator(config)
        self._app = create_app(config, self._emulator)
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(_uvicorn_config(self._app, self.host, self.port, "warning"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="mori-emulator", daemon=True
        )
        self._thread.start()
        self._wait_started()

    def _wait_started(self) -> None:
        """Block until uvicorn has started (or fail)."""
        deadline = time.monotonic() + _THREAD_TIMEOUT
        assert self._server is not None and self._thread is not None
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator server failed to start")
            time.sleep(0.01)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve the emulator in the foreground (the ``emulator`` CLI command).

    Returns normally after Ctrl-C / SIGINT / SIGTERM, once everything is shut down.
    """
    with _storage_for(config) as effective:
        emulator = Emulator(effective)
        try:
            app = create_app(effective, emulator)
            uvicorn.Server(_uvicorn_config(app, host, port, "info")).run()
        except KeyboardInterrupt:  # uvicorn re-raises the signal after its graceful shutdown
            pass
        finally:
            emulator.close()


@contextlib.contextmanager
def _storage_for(config: EmulatorConfig) -> Iterator[EmulatorConfig]:
    """``config``, with a :class:`LocalS3` started for it when it names no S3 endpoint."""
    if config.s3_endpoint_url is not None:
        yield config
        return
    with LocalS3() as s3:
        yield dataclasses.replace(config, s3_endpoint_url=s3.endpoint_url)


def _uvicorn_config(app: FastAPI, host: str, port: int, log_level: str) -> uvicorn.Config:
    """Uvicorn settings shared by :class:`EmulatorServer` and :func:`run`."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
    )


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket bound to ``host:port`` (``0`` = a free port).

    The explicit ``IPPROTO_TCP`` matters: asyncio enables ``TCP_NODELAY`` on accepted sockets
    only when their protocol says TCP; without it every keep-alive request waits ~40 ms
    (Nagle's algorithm meeting delayed ACKs).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock
