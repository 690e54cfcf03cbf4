"""One run's configuration and the objects it works with (no Prefect here).

:class:`RunConfig` resolves the locations a run uses: outputs to ``<manifest folder>/output``,
audit to ``<manifest folder>/audit``, the ledger beside the audit (``<audit>/ledger.sqlite``)
or where the settings name it (a PostgreSQL ledger shared by every host). Secrets come from
:class:`~mori.settings.Settings` only, never from parameters (which the UI shows).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

from mori.batch.claims import ClaimHolder, owner_name
from mori.batch.completion import CompletionWaiter
from mori.batch.ledger import ledger_location, open_ledger
from mori.batch.listing import SourceSpec, source_root
from mori.batch.manifest import ValidationOptions
from mori.batch.orders import OrderProcessor, OrderSettings
from mori.batch.parameters import DEFAULTS, Completion, ProtectParameters, orders_at_once
from mori.batch.progress import OrderObserver
from mori.batch.storage import Storage, absolute, join, parent
from mori.client import MoriClient
from mori.settings import Settings

__all__ = ["Completion", "RunConfig", "Runtime"]


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs to know, with its locations resolved."""

    manifest_uri: str
    output_uri: str
    audit_uri: str
    #: The ledger's path or URL (see :func:`mori.batch.ledger.ledger_location`).
    ledger: str
    settings: Settings
    order_size: int = DEFAULTS.order_size
    #: Orders driven at once as asked (0: automatic; :attr:`orders_at_once` is the number).
    max_concurrent_orders: int = DEFAULTS.max_concurrent_orders
    wait_timeout: float = DEFAULTS.wait_timeout_seconds
    poll_interval: float = DEFAULTS.poll_interval_seconds
    webhook_grace: float = DEFAULTS.webhook_grace_seconds
    completion: Completion = DEFAULTS.completion
    allowed_private_hosts: frozenset[str] = frozenset()
    options: dict[str, Any] | None = None
    #: Finish each order where the run that planned it writes (``finalize``, ``reconcile``).
    output_from_ledger: bool = False
    #: Seconds a claim on an order lasts unless renewed (see :mod:`mori.batch.claims`).
    lease_seconds: float = 60.0

    #: A listed source instead of a manifest (``manifest_uri`` is then the source's URI).
    source: SourceSpec | None = None
    #: Most images a run may send to MORI (0: no limit).
    max_new_images: int = DEFAULTS.max_new_images

    @classmethod
    def for_protect(cls, params: ProtectParameters, settings: Settings) -> RunConfig:
        """A ``protect`` run's configuration: default output and audit beside the manifest, or
        inside the source folder (whose listing then leaves them out)."""
        if params.source is not None:
            manifest_uri = base = source_root(params.source)
        else:
            manifest_uri = absolute(params.manifest or "")
            base = parent(manifest_uri)
        audit_uri = absolute(params.audit or join(base, "audit"))
        output_uri = absolute(params.output or join(base, "output"))
        source = None
        if params.source is not None:
            source = SourceSpec(
                manifest_uri,
                tuple(params.include),
                tuple(params.exclude),
                params.modified_since,
                skip=(output_uri, audit_uri),
            )
        return cls(
            manifest_uri=manifest_uri,
            output_uri=output_uri,
            audit_uri=audit_uri,
            ledger=ledger_location(audit_uri, settings),
            settings=settings,
            order_size=params.order_size,
            max_concurrent_orders=params.max_concurrent_orders,
            wait_timeout=params.wait_timeout_seconds,
            poll_interval=params.poll_interval_seconds,
            webhook_grace=params.webhook_grace_seconds,
            completion=params.completion,
            allowed_private_hosts=frozenset(params.allowed_private_hosts),
            source=source,
            max_new_images=params.max_new_images,
        )

    @classmethod
    def for_orders(
        cls,
        audit: str,
        output: str | None,
        settings: Settings,
        *,
        wait_timeout: float,
        poll_interval: float = DEFAULTS.poll_interval_seconds,
        completion: Completion = "webhook",
    ) -> RunConfig:
        """The configuration of finishing orders recorded in the ledger of ``audit``.

        Without ``output`` each order's outputs go where the ``protect`` run that planned it
        writes (recorded in the ledger); orders without that record go to ``output`` beside the
        audit folder (``<m>/audit`` → ``<m>/output``), ``protect``'s default. An explicit
        ``output`` takes every order there. No webhook grace: an event already in the ledger
        is read first, then MORI is polled.
        """
        audit_uri = absolute(audit)
        return cls(
            manifest_uri="",
            output_uri=absolute(output or join(parent(audit_uri), "output")),
            audit_uri=audit_uri,
            ledger=ledger_location(audit_uri, settings),
            settings=settings,
            wait_timeout=wait_timeout,
            poll_interval=poll_interval,
            webhook_grace=0.0,
            completion=completion,
            output_from_ledger=output is None,
        )

    @property
    def orders_at_once(self) -> int:
        """Orders driven at once: ``max_concurrent_orders``, or for ``0`` the automatic choice
        for this process's rate limit and completion
        (:func:`~mori.batch.parameters.orders_at_once`)."""
        shared = self.settings.global_rate_limit is not None
        polling = not self.use_webhooks
        return orders_at_once(self.max_concurrent_orders, self.settings.rpm, shared, polling)

    @property
    def use_webhooks(self) -> bool:
        """Wait for webhook events first? (``auto``: when a webhook secret is configured)."""
        if self.completion == "auto":
            return self.settings.webhook_secret is not None
        return self.completion == "webhook"

    def validation(self) -> ValidationOptions:
        return ValidationOptions(
            allowed_private_hosts=self.allowed_private_hosts, processing_options=self.options
        )


class Runtime:
    """The client, ledger, storage and processor of one run; close it when done.

    The processor claims each order before driving it (``owner``: who this process is in a
    claim, by default ``host:pid``; ``ticket``: the dispatch a child run drives) and the claims
    are renewed in the background until the runtime closes. ``observer`` hears every order's
    ``created``, ``completed`` and ``failed``.
    """

    def __init__(
        self,
        config: RunConfig,
        storage: Storage,
        client: MoriClient,
        *,
        observer: OrderObserver | None = None,
        owner: str | None = None,
        ticket: str | None = None,
    ) -> None:
        self.config = config
        self.storage = storage
        self.ledger = open_ledger(config.ledger)
        self.client = client
        self.claims = ClaimHolder(
            self.ledger, owner or owner_name(), config.lease_seconds, ticket
        ).start()
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
                options=config.options,
                output_from_ledger=config.output_from_ledger,
                verification=config.settings.verify_outputs,
            ),
            observer=observer,
            claims=self.claims,
        )

    def close(self) -> None:
        try:
            self.processor.close()
            self.claims.stop()
        finally:
            self.client.close()
            self.ledger.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
