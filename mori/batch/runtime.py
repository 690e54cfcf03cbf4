"""One run's configuration and the objects it works with (no Prefect here).

:class:`RunConfig` resolves the defaults from DESIGN.md: outputs to ``<manifest folder>/output``,
audit to ``<manifest folder>/audit``, the ledger beside the audit (``<audit>/ledger.sqlite``) or,
for an ``s3://`` audit, in ``MORI_LEDGER_PATH`` / the user's state folder. The API key and the
webhook secret come from the environment only, never from parameters (which the UI shows).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from mori.batch.completion import CompletionWaiter
from mori.batch.ledger import Ledger
from mori.batch.manifest import ValidationOptions
from mori.batch.orders import OrderProcessor, OrderSettings
from mori.batch.storage import Storage, is_s3, join, parent
from mori.client import MoriClient

Completion = Literal["auto", "webhook", "poll"]


@dataclass(frozen=True)
class RunConfig:
    """Everything a ``protect`` run needs to know, with defaults resolved."""

    manifest_uri: str
    output_uri: str
    audit_uri: str
    ledger_path: str
    order_size: int = 100
    max_concurrent_orders: int = 4
    upload_concurrency: int = 16
    wait_timeout: float = 1800.0
    poll_interval: float = 2.0
    webhook_grace: float = 30.0
    completion: Completion = "auto"
    allowed_private_hosts: frozenset[str] = frozenset()
    options: dict[str, Any] | None = None
    #: Finish each order where the run that planned it writes (``finalize``, ``reconcile``).
    output_from_ledger: bool = False
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def resolve(
        cls, manifest: str, output: str | None = None, audit: str | None = None, **kw: Any
    ) -> RunConfig:
        """Fill in the default output, audit and ledger locations for a manifest."""
        manifest_uri = manifest if is_s3(manifest) else str(Path(manifest).expanduser().resolve())
        base = parent(manifest_uri)
        output_uri = output or join(base, "output")
        audit_uri = audit or join(base, "audit")
        if not is_s3(output_uri):
            output_uri = str(Path(output_uri).expanduser().resolve())
        if not is_s3(audit_uri):
            audit_uri = str(Path(audit_uri).expanduser().resolve())
        return cls(manifest_uri, output_uri, audit_uri, default_ledger(audit_uri), **kw)

    @property
    def use_webhooks(self) -> bool:
        """Wait for webhook events first? (``auto``: when a webhook secret is configured)."""
        if self.completion == "auto":
            return bool(os.environ.get("MORI_WEBHOOK_SECRET"))
        return self.completion == "webhook"

    def validation(self) -> ValidationOptions:
        return ValidationOptions(
            allowed_private_hosts=self.allowed_private_hosts, processing_options=self.options
        )


def default_ledger(audit_uri: str) -> str:
    """``<audit>/ledger.sqlite`` for a local audit; a per-audit file in the state folder else."""
    if explicit := os.environ.get("MORI_LEDGER_PATH"):
        return explicit
    if not is_s3(audit_uri):
        return str(Path(audit_uri, "ledger.sqlite"))
    state = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    digest = hashlib.sha256(audit_uri.encode()).hexdigest()[:16]
    return str(state / "mori-pipeline" / f"ledger-{digest}.sqlite")


class Runtime:
    """The client, ledger, storage and processor of one run; close it when done."""

    def __init__(
        self, config: RunConfig, storage: Storage | None = None, client: MoriClient | None = None
    ) -> None:
        self.config = config
        self.storage = storage or Storage()
        self.ledger = Ledger(config.ledger_path)
        self.client = client or MoriClient.from_env()
        self.waiter = CompletionWaiter(
            self.client,
            self.ledger,
            use_webhooks=config.use_webhooks,
            poll_interval=config.poll_interval,
            webhook_grace=config.webhook_grace,
        )
        self.processor = OrderProcessor(
            self.client,
            self.ledger,
            self.storage,
            self.waiter,
            OrderSettings(
                output_uri=config.output_uri,
                wait_timeout=config.wait_timeout,
                upload_concurrency=config.upload_concurrency,
                options=config.options,
                output_from_ledger=config.output_from_ledger,
            ),
        )

    def close(self) -> None:
        self.client.close()
        self.ledger.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
