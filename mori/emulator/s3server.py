"""A local S3 endpoint (moto's threaded server) for the emulator, the demo and tests.

moto is the ``emulator`` extra: it is imported when a :class:`LocalS3` starts, so an emulator
pointed at another S3 endpoint (``AWS_ENDPOINT_URL``) runs without it.
"""

from __future__ import annotations

import logging
import socket
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from mori.serving import free_port

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

#: Dummy credentials moto accepts; never real ones.
DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"
REGION = "us-east-1"
_START_TIMEOUT = 15.0


def s3_client(endpoint_url: str | None) -> Any:
    """A boto3 S3 client for ``endpoint_url`` (path-style; dummy credentials for a local one)."""
    kwargs: dict[str, Any] = {
        "region_name": REGION,
        "config": Config(
            s3={"addressing_style": "path"}, retries={"max_attempts": 3}, max_pool_connections=64
        ),
    }
    if endpoint_url is not None:
        kwargs.update(
            endpoint_url=endpoint_url,
            aws_access_key_id=DUMMY_ACCESS_KEY,
            aws_secret_access_key=DUMMY_SECRET_KEY,
        )
    return boto3.session.Session().client("s3", **kwargs)


class LocalS3:
    """``with LocalS3() as s3:`` runs an in-process S3 server at ``s3.endpoint_url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint_url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    def client(self) -> Any:
        """A boto3 S3 client for this server."""
        return s3_client(self.endpoint_url)

    def start(self) -> LocalS3:
        """Start the server (idempotent)."""
        if self._server is None:
            try:
                from moto.server import ThreadedMotoServer
            except ImportError as exc:
                raise RuntimeError(
                    "a local S3 endpoint needs moto: pip install 'mori-pipeline[emulator]'"
                ) from exc
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
            self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
            self._server.start()
            _wait_listening(self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _wait_listening(host: str, port: int) -> None:
    """Block until ``host:port`` accepts TCP connections."""
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"local S3 did not start on {host}:{port}") from None
            time.sleep(0.02)
