"""Shared pieces of the chaos tests: the local stack with fault knobs, images, manifests, audit.

:class:`ChaosStack` is :class:`deployments.stack.LocalStack` with the settings chaos needs and
``LocalStack`` does not expose (``fault_hang_seconds``, webhook fault timings, a short client
timeout, a distinctive API key). Everything is real: moto's S3 server, the emulator over HTTP
(uvicorn), the webhook receiver writing into the run's ledger.
"""

from __future__ import annotations

import csv
import io
import os
import random
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pandas as pd
import psycopg
import pyarrow.dataset as ds
from PIL import Image
from psycopg.rows import dict_row

from deployments.receiver import Receiver
from deployments.stack import environment
from mori.client import MoriClient
from mori.emulator.config import EmulatorConfig
from mori.emulator.core import Emulator
from mori.emulator.faults import HTTP_FAULTS, WEBHOOK_FAULTS
from mori.emulator.s3server import LocalS3
from mori.emulator.server import EmulatorServer
from mori.settings import Settings
from tests.support.paths import REPO

VENV_BIN = REPO / ".venv" / "bin"
#: Distinctive, so a leak anywhere is found by a plain substring search.
API_KEY = "sk-live-SECRET123"
#: (Pillow format, extension) of the corpus, in rotation.
FORMATS = (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tiff"))


@dataclass
class ChaosStack:
    """S3 + emulator (+ webhook receiver into ``ledger_path``) on loopback; sets the env."""

    #: The ledger the receiver records into: a SQLite file or a PostgreSQL URL.
    ledger_path: Path | str | None = None
    faults: str = ""
    seed: int = 0
    url_hosts: frozenset[str] = frozenset()
    processing_seconds: float = 0.2
    fault_hang_seconds: float = 2.5
    client_timeout: float = 2.0
    api_key: str = API_KEY
    webhook_delay_seconds: float = 0.5
    webhook_reorder_hold: float = 1.0
    #: Seconds added to the emulator's clock (its injected ``EmulatorConfig.clock``): raise it
    #: to make the presigned URLs it already issued expire.
    clock_offset: float = 0.0
    #: The MORI API generation the emulator, the client and the receiver speak.
    generation: str = "g1"
    server: EmulatorServer | None = field(default=None, init=False)
    s3: LocalS3 | None = field(default=None, init=False)
    env: dict[str, str] = field(default_factory=dict, init=False)
    issued_signatures: list[str] = field(default_factory=list, init=False)
    _stack: ExitStack = field(default_factory=ExitStack, init=False)

    def __enter__(self) -> ChaosStack:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def _start(self) -> None:
        enter = self._stack.enter_context
        self.s3 = enter(LocalS3())
        config = EmulatorConfig(
            api_keys=frozenset({self.api_key}),
            processing_seconds=self.processing_seconds,
            url_allowlist=self.url_hosts,
            faults=self.faults,
            seed=self.seed,
            fault_hang_seconds=self.fault_hang_seconds,
            webhook_delay_seconds=self.webhook_delay_seconds,
            webhook_reorder_hold=self.webhook_reorder_hold,
            webhook_retry_delays=(0.2, 0.5, 1.0),
            s3_endpoint_url=self.s3.endpoint_url,
            first_order_id=int(time.time() * 1000),
            clock=lambda: time.time() + self.clock_offset,
            generation=self.generation,
        )
        self.server = enter(EmulatorServer(config))
        self._record_signatures(self.server.emulator)
        self.env = {
            "MORI_API_URL": self.server.url,
            "MORI_API_KEY": self.api_key,
            "MORI_API_GENERATION": self.generation,
            "MORI_TIMEOUT_SECONDS": str(self.client_timeout),
            "AWS_ENDPOINT_URL": self.s3.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        enter(environment(**self.env))
        os.environ.pop("MORI_RATE_LIMIT_RPM", None)
        if self.ledger_path is not None:
            secret: list[str] = []
            receiver = Receiver(str(self.ledger_path), Settings(), lambda: next(iter(secret), None))
            self._stack.callback(receiver.close)
            url = enter(receiver.running())
            with MoriClient.from_env() as client:
                secret.append(client.register_webhook(url).secret)
            self.env["MORI_WEBHOOK_SECRET"] = secret[0]
            enter(environment(MORI_WEBHOOK_SECRET=secret[0]))

    def _record_signatures(self, emulator: Emulator) -> None:
        """Remember the ``sig`` of every presigned URL the emulator issues (a spy, not a mock:
        the real presigner still makes every URL)."""
        issue = emulator.presigner.url
        issued = self.issued_signatures

        def spy(*args: Any, **kwargs: Any) -> tuple[str, int]:
            url, expires = issue(*args, **kwargs)
            issued.extend(parse_qs(urlsplit(url).query).get("sig", []))
            return url, expires

        emulator.presigner.url = spy  # type: ignore[method-assign]

    @property
    def emulator(self) -> Emulator:
        assert self.server is not None
        return self.server.emulator

    def stats(self) -> dict[str, Any]:
        """``GET /_emulator/stats`` over HTTP, as any client would read it."""
        assert self.server is not None
        return dict(httpx.get(self.server.url + "/_emulator/stats", timeout=10).json())

    def set_faults(self, spec: str, seed: int = 0) -> None:
        """Swap the live emulator's fault plan; its orders and idempotency memory stay."""
        self.emulator.set_faults(spec, seed)


# -- images and manifests ----------------------------------------------------------------------


def image_bytes(rng: random.Random, fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """A small real image of seeded noise (so every one has distinct bytes)."""
    img = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **({"quality": 85} if fmt in ("JPEG", "WEBP") else {}))
    return buffer.getvalue()


def make_corpus(
    root: Path, count: int, url_share: float, seed: int, prefix: str = "img", start: int = 0
) -> list[dict[str, str]]:
    """``count`` images under ``root/images`` (files) and ``root/web`` (URL rows, served by
    :func:`deployments.stack.static_files`); manifest rows with ``{host}`` for URL hosts."""
    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "web").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(start, start + count):
        fmt, ext = FORMATS[i % len(FORMATS)]
        name = f"{prefix}-{i:05d}.{ext}"
        is_url = rng.random() < url_share
        folder = root / ("web" if is_url else "images")
        (folder / name).write_bytes(image_bytes(rng, fmt))
        source = f"http://{{host}}/{name}" if is_url else f"images/{name}"
        rows.append({"source": source, "id": f"{prefix}-{i}", "batch": prefix})
    return rows


def write_csv(path: Path, rows: Sequence[dict[str, Any]], host: str = "") -> Path:
    """Write manifest rows as CSV, filling ``{host}`` in sources."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "source": str(row["source"]).replace("{host}", host)})
    return path


# -- reading what a run left -------------------------------------------------------------------


def audit_table(audit: Path, table: str) -> pd.DataFrame:
    """One audit table, read as a data team would (pyarrow dataset, hive partitioning)."""
    folder = audit / table
    if not folder.exists():
        return pd.DataFrame()
    return ds.dataset(folder, format="parquet", partitioning="hive").to_table().to_pandas()


def ledger_query(target: Path | str, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """Rows (by column name) of a read-only query on a ledger: a SQLite file, or a PostgreSQL
    URL (write the query in SQL both understand, e.g. ``HAVING COUNT(*) > 1``)."""
    if str(target).startswith("postgresql://"):
        with psycopg.connect(str(target), row_factory=dict_row) as conn:
            return conn.execute(sql.replace("?", "%s"), tuple(args)).fetchall()
    db = sqlite3.connect(f"file:{target}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        return list(db.execute(sql, args))
    finally:
        db.close()


def ledger_for(backend: str, folder: Path, request: Any) -> Path | str:
    """Where a chaos test's ledger lives: ``<folder>/audit/ledger.sqlite``, or a fresh
    PostgreSQL database (its URL is then also ``MORI_LEDGER_URL`` for every run)."""
    if backend == "sqlite":
        return folder / "audit" / "ledger.sqlite"
    url: str = request.getfixturevalue("postgres_url")
    return url


def fault_kinds(stats: dict[str, Any]) -> Counter[str]:
    """Injected faults by kind (``500``, ``timeout``, ``dup``...), over every endpoint."""
    kinds: Counter[str] = Counter()
    for key, n in stats["faults_injected"].items():
        kinds[key.split(":", 1)[1]] += n
    return kinds


ALL_FAULT_KINDS = frozenset(HTTP_FAULTS | WEBHOOK_FAULTS)


def decodes(data: bytes) -> tuple[int, int]:
    """The size of a fully decoded image (raises if it does not decode)."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.size


# -- children ----------------------------------------------------------------------------------


def child_env(api_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a pipeline subprocess: this one's, the harness's API, ``extra``."""
    env = dict(os.environ)
    env.update(
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONUNBUFFERED="1",
        **(extra or {}),
    )
    return env


def cli(
    args: Sequence[str],
    env: dict[str, str],
    cwd: Path,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``mori-pipeline ARGS`` to the end."""
    return subprocess.run(
        [str(VENV_BIN / "mori-pipeline"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
