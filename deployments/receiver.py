"""``mori-pipeline receiver`` wired to Prefect: each finished order starts ``finalize`` once.

The receiver (:mod:`mori.receiver`) verifies, deduplicates by ``eventId`` and durably records
every MORI event in the ledger, answers, and only then calls its ``on_event`` hook. The hook
here, :class:`FinalizeDispatcher`, hands the order id to a background thread (the HTTP answer
never waits for Prefect) which calls::

    run_deployment("finalize/finalize", parameters={"order_id": ...},
                   idempotency_key=f"finalize-{order_id}", timeout=0)

Why ``run_deployment`` and not ``emit_event`` plus a deployment trigger: Prefect's server keeps
flow runs unique on ``(flow, idempotency_key)``, so the key makes "one ``finalize`` run per
order" a database guarantee, whatever MORI sends: the same event twice (a ``dup``), or two
events with different ``eventId`` for one order (a resend), across receiver restarts and
several receiver replicas. An event trigger fires once per Prefect event and could only dedupe
on event ids; the direct call also returns the flow run, so the receiver logs which run an
order started (traceable), and a failed call is visible here instead of silently dropped.

If Prefect is unreachable the event is still in the ledger; the ``reconcile`` deployment
finishes such orders a few minutes later.
"""

from __future__ import annotations

import argparse
import contextvars
import hashlib
import logging
import os
import queue
import stat
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from mori.batch.ledger import ledger_location, open_ledger
from mori.batch.ledger.target import parse_target
from mori.batch.receiver import PATH, EventHook, create_app
from mori.batch.spool import EventSpool, SpoolDrainer
from mori.client import MoriClient
from mori.models import WebhookEvent
from mori.serving import ThreadedServer
from mori.settings import Settings
from tasks.ratelimit import client_for

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

log = logging.getLogger("mori.receiver.prefect")

DEPLOYMENT = "finalize/finalize"

#: Starts one flow run of a deployment; returns the flow run's id (``run_deployment`` by default).
Starter = Callable[[str, dict[str, Any], str], UUID]


def idempotency_key(order_id: str) -> str:
    """The key that makes a second ``finalize`` run for the same order impossible."""
    return f"finalize-{order_id}"


def start_with_run_deployment(deployment: str, parameters: dict[str, Any], key: str) -> UUID:
    """Create a flow run of ``deployment`` (or get the existing one with the same key)."""
    from prefect.deployments import run_deployment

    flow_run = run_deployment(
        deployment,
        parameters=parameters,
        idempotency_key=key,
        timeout=0,
        as_subflow=False,
    )
    return cast("FlowRun", flow_run).id  # the sync variant: we are on a plain thread


class FinalizeDispatcher:
    """The receiver's ``on_event`` hook: start the ``finalize`` deployment once per order.

    Calls from the receiver only enqueue; one daemon thread starts the runs. Every event, even
    a duplicate, asks Prefect again: the idempotency key (not this process's memory) is what
    keeps it to one run per order, so it holds across restarts and replicas, and a call that
    failed is retried by MORI's next delivery. The Prefect settings (API URL) are those of the
    context that built the dispatcher.
    """

    def __init__(
        self,
        deployment: str = DEPLOYMENT,
        parameters: Mapping[str, Any] | None = None,
        *,
        starter: Starter = start_with_run_deployment,
    ) -> None:
        self.deployment = deployment
        self.parameters = dict(parameters or {})
        self._starter = starter
        self._context = contextvars.copy_context()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._started: dict[str, UUID] = {}
        self.failures = 0
        self._thread = threading.Thread(target=self._work, name="finalize-dispatcher", daemon=True)
        self._thread.start()

    @property
    def started(self) -> dict[str, UUID]:
        """Flow run id per order id this dispatcher started (or found) so far."""
        with self._lock:
            return dict(self._started)

    def __call__(self, event: WebhookEvent, new: bool) -> None:
        """Hook: called after the event is recorded (``new`` is ``False`` for a duplicate)."""
        self._queue.put(event.data.order_id)

    def _work(self) -> None:
        while (order_id := self._queue.get()) is not None:
            try:
                self._context.run(self._dispatch, order_id)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _dispatch(self, order_id: str) -> None:
        params = {**self.parameters, "order_id": order_id}
        try:
            run_id = self._starter(self.deployment, params, idempotency_key(order_id))
        except Exception:
            self.failures += 1
            log.exception("could not start %s for order %s (reconcile will)", DEPLOYMENT, order_id)
            return
        with self._lock:
            self._started[order_id] = run_id
        log.info("order %s -> %s flow run %s", order_id, self.deployment, run_id)

    def drain(self) -> None:
        """Block until every event handed in so far was dispatched."""
        self._queue.join()

    def close(self) -> None:
        """Dispatch what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=30)


# -- the command -------------------------------------------------------------------------------


def register(
    url: str, secret_file: Path, settings: Settings, client: MoriClient | None = None
) -> Path:
    """Register ``url`` as the account's webhook endpoint at MORI (``POST /api/v2/webhook``)
    and store the signing secret MORI hands back in ``secret_file`` (mode 0600).

    Registering replaces the account's previous URL and rotates the secret.
    """
    owned = client is None
    client = client or client_for(settings)
    try:
        secret = client.register_webhook(url).secret
    finally:
        if owned:
            client.close()
    secret_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret)
    os.chmod(secret_file, stat.S_IRUSR | stat.S_IWUSR)
    return secret_file


def secret_source(settings: Settings, secret_file: Path | None) -> Callable[[], str | None]:
    """``MORI_WEBHOOK_SECRET`` if set, else the secret file's content (read per request, so a
    re-registration applies without a restart)."""

    def secret() -> str | None:
        if settings.webhook_secret is not None:
            return settings.webhook_secret.get_secret_value()
        if secret_file is not None and secret_file.is_file():
            return secret_file.read_text(encoding="utf-8").strip() or None
        return None

    return secret


def state_file(ledger: str, settings: Settings, name: str) -> Path:
    """A receiver's own file: beside a SQLite ledger, else in the state folder (one per
    PostgreSQL ledger)."""
    target = parse_target(ledger)
    if target.path is not None:
        return target.path.parent / name
    digest = hashlib.sha256(target.describe().encode()).hexdigest()[:12]
    return settings.state_home / "mori-pipeline" / f"{digest}-{name}"


class Receiver:
    """A webhook receiver and what it holds: the ledger, its event spool (with the thread that
    drains it into the ledger) and the app. :meth:`serve` runs it in the foreground,
    :meth:`running` on a background thread; :meth:`close` releases everything."""

    def __init__(
        self,
        ledger: str,
        settings: Settings,
        secret: Callable[[], str | None],
        on_event: EventHook | None = None,
        *,
        spool_file: Path | None = None,
    ) -> None:
        self.ledger = open_ledger(ledger)
        self.spool = EventSpool(spool_file or state_file(ledger, settings, "receiver-spool.sqlite"))
        self.drainer = SpoolDrainer(self.spool, self.ledger.record_event).start()
        self.app = create_app(
            self.ledger,
            secret,
            on_event,
            generation=settings.api_generation,
            spool=self.spool,
        )

    def serve(self, host: str, port: int) -> None:
        """Answer deliveries until interrupted."""
        import uvicorn

        print(f"receiving MORI webhooks on http://{host}:{port}{PATH}")
        uvicorn.run(self.app, host=host, port=port, log_level="info")

    @contextmanager
    def running(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Answer deliveries on a background thread; yields the URL to register with MORI."""
        with ThreadedServer(self.app, host=host, port=port) as server:
            yield server.url + PATH

    def close(self) -> None:
        self.drainer.stop()
        self.spool.close()
        self.ledger.close()


class NoSecretError(Exception):
    """Neither ``MORI_WEBHOOK_SECRET`` nor a registered secret is there to check deliveries."""

    def __str__(self) -> str:
        return "no webhook secret: set MORI_WEBHOOK_SECRET or pass --register-url URL"


def finalizing_receiver(
    ledger: str,
    settings: Settings,
    *,
    register_url: str | None = None,
    secret_file: Path | None = None,
    deployment: str | None = DEPLOYMENT,
    parameters: Mapping[str, Any] | None = None,
) -> tuple[Receiver, FinalizeDispatcher | None]:
    """The receiver of a Prefect setup: registered with MORI when ``register_url`` is given
    (its secret kept in ``secret_file``), starting ``deployment`` once per finished order.
    Raises :class:`NoSecretError` when there is no secret to check deliveries with."""
    secret_file = secret_file or state_file(ledger, settings, "webhook-secret")
    if register_url:
        register(register_url, secret_file, settings)
        print(f"registered {register_url} with MORI; secret stored in {secret_file} (0600)")
    secret = secret_source(settings, secret_file)
    if not secret():
        raise NoSecretError
    dispatcher = FinalizeDispatcher(deployment, parameters) if deployment else None
    return Receiver(ledger, settings, secret, dispatcher), dispatcher


def serve(
    ledger: str,
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8901,
    **options: Any,
) -> int:
    """Run the receiver of :func:`finalizing_receiver` in the foreground."""
    try:
        receiver, dispatcher = finalizing_receiver(ledger, settings, **options)
    except NoSecretError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        receiver.serve(host, port)
    finally:
        if dispatcher is not None:
            dispatcher.close()
        receiver.close()
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``receiver`` subcommand's options ."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8901)
    parser.add_argument("--ledger", help="ledger (default $MORI_LEDGER_URL or <audit>'s)")
    parser.add_argument(
        "--audit", help="audit folder or s3:// of the finalize runs (default: the deployment's)"
    )
    parser.add_argument("--output", help="outputs of the finalize runs (default: the deployment's)")
    parser.add_argument(
        "--register-url",
        metavar="URL",
        help="register this public URL (ending in /webhooks/mori) with MORI first; "
        "replaces the account's webhook URL and stores the new secret in --secret-file",
    )
    parser.add_argument(
        "--secret-file",
        help="where the webhook secret is kept (default: beside a SQLite ledger, else in "
        "the state folder)",
    )
    parser.add_argument(
        "--deployment",
        default=DEPLOYMENT,
        help=f"deployment started once per finished order (default {DEPLOYMENT})",
    )
    parser.add_argument(
        "--no-prefect",
        action="store_true",
        help="only record events (runs of protect then read them from the ledger)",
    )


def run(args: argparse.Namespace) -> int:
    """``mori-pipeline receiver``."""
    from mori.batch.storage import absolute

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings()
    if not (args.ledger or settings.ledger or args.audit):
        print("error: give --ledger or --audit, or set MORI_LEDGER_URL", file=sys.stderr)
        return 1
    ledger = ledger_location(absolute(args.audit or "."), settings, args.ledger)
    parameters = {
        name: absolute(uri) for name, uri in (("audit", args.audit), ("output", args.output)) if uri
    }
    return serve(
        ledger,
        settings,
        host=args.host,
        port=args.port,
        register_url=args.register_url,
        secret_file=Path(args.secret_file) if args.secret_file else None,
        deployment=None if args.no_prefect else args.deployment,
        parameters=parameters,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.receiver", description="MORI webhook receiver for Prefect"
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    from deployments.console import guarded

    return guarded(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
