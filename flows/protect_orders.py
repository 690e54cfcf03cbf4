"""The ``protect-orders`` flow: drive one group of a fanned-out ``protect`` run's orders.

A ``protect`` run with ``fan_out`` plans its orders (intent recorded in the shared ledger), then
starts this flow through its deployment once per group of at most 20 order keys, on any worker
of the pool. Reads top to bottom: claim the group's orders in the ledger (those another live
process holds, or that are finished, are left alone) -> drive them with the same
``process-order`` task and resumable order processor as ``protect``, renewing the claims from a
background thread -> record what it asked of MORI -> release the claims. The parent run gathers
the outcome from the ledger and writes the run's one audit; this flow writes none.

The ledger and the credentials come from the worker's settings (``MORI_LEDGER_URL``, ...),
never from parameters; ``audit`` only locates a ledger when ``MORI_LEDGER_URL`` is unset.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from mori.batch import parameters as P
from mori.batch.fanout import GROUP_SIZE, run_of
from mori.batch.parameters import MAX_CONCURRENT_ORDERS
from mori.batch.runtime import RunConfig, Runtime
from mori.batch.storage import Storage
from tasks.credentials import load_settings
from tasks.driving import drive_orders
from tasks.fanout import claim_owner
from tasks.ratelimit import client_for

D = P.DEFAULTS


@dataclass
class GroupOutcome:
    """What one ``protect-orders`` run did."""

    ticket: str
    owner: str
    driven: int = 0
    #: Orders it did not drive: finished already, or held by another live process.
    left_alone: list[str] = field(default_factory=list)
    #: Order outcomes by status (``processed``, ``failed``, ``pending``, ``skipped``: finished
    #: by another process meanwhile).
    orders: dict[str, int] = field(default_factory=dict)


@flow(
    name="protect-orders",
    flow_run_name="protect-orders {ticket}",
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_CONCURRENT_ORDERS),  # type: ignore[arg-type]
    log_prints=True,
)
def protect_orders(
    order_keys: Annotated[
        list[str],
        Field(min_length=1, max_length=5 * GROUP_SIZE, description="Keys of planned orders"),
    ],
    ticket: Annotated[
        str,
        Field(
            min_length=1,
            max_length=200,
            description="<protect run>/<group>/<attempt>: what this run's claims carry",
        ),
    ],
    audit: Annotated[
        str, Field(min_length=1, description="The protect run's audit folder or s3:// prefix")
    ],
    output: Annotated[str | None, Field(description="The protect run's outputs")] = None,
    max_concurrent_orders: P.MaxConcurrentOrders = D.max_concurrent_orders,
    wait_timeout_seconds: P.WaitTimeout = D.wait_timeout_seconds,
    poll_interval_seconds: P.PollInterval = D.poll_interval_seconds,
    webhook_grace_seconds: P.WebhookGrace = D.webhook_grace_seconds,
    completion: P.CompletionMode = D.completion,
    lease_seconds: Annotated[
        float,
        Field(ge=3, le=3600, description="Seconds a claim lasts unless renewed (every third)"),
    ] = 60.0,
) -> GroupOutcome:
    """Claim and drive a group of planned orders; the parent ``protect`` run audits them."""
    log = get_run_logger()
    settings = load_settings()
    config = dataclasses.replace(
        RunConfig.for_orders(
            audit,
            output,
            settings,
            wait_timeout=wait_timeout_seconds,
            poll_interval=poll_interval_seconds,
            completion=completion,
        ),
        webhook_grace=webhook_grace_seconds,
        max_concurrent_orders=max_concurrent_orders,
        lease_seconds=lease_seconds,
    )
    outcome = GroupOutcome(ticket, claim_owner(settings))
    with Runtime(config, Storage(), client_for(settings), owner=outcome.owner, ticket=ticket) as rt:
        held = rt.claims.claim(order_keys)  # the whole group at once: the parent watches them
        outcome.left_alone = [k for k in order_keys if k not in held]
        log.info("%s holds %d of %d orders", outcome.owner, len(held), len(order_keys))
        results, crashed = drive_orders(held, rt, config.orders_at_once)
        stats = rt.client.stats  # counted in the parent's audit (its runs row)
        rt.ledger.record_child_stats(
            ticket,
            run_of(ticket),
            {
                "requests": sum(stats.requests.values()),
                "retries": sum(stats.retries.values()),
                "rate_limited": stats.rate_limited,
            },
        )
    outcome.driven = len(held)
    outcome.orders = dict(Counter(r.status for r in results.values()))
    if crashed:
        outcome.orders["pending"] = outcome.orders.get("pending", 0) + len(crashed)
        for key, reason in crashed.items():
            log.warning("order %s not finished: %s", key[:8], reason)
    log.info("done: %s", outcome.orders)
    return outcome
