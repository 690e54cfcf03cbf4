"""Prefect's side of fanning a ``protect`` run out: child runs of ``protect-orders``.

:class:`DeploymentDispatcher` is the :class:`~mori.batch.fanout.Dispatcher` of
:class:`~mori.batch.fanout.FanOut`: it starts each group's child run with ``run_deployment``
(``timeout=0``, the group's idempotency key; linked to the parent as a subflow), reads child
states, and marks a lost child ``Crashed`` (a worker that died with its host never reports).
:func:`fan_out_orders` runs the fan-out and builds the run's order results from the ledger, so
the parent writes the run's one audit exactly as when it drives the orders itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, cast
from uuid import UUID

from prefect import get_client, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.states import Crashed

from mori.batch.claims import owner_name
from mori.batch.fanout import FanOut, FanOutPolicy, Group
from mori.batch.results import OrderResult, result_from_ledger
from mori.batch.runtime import RunConfig, Runtime
from mori.settings import Settings

#: The deployment that drives a group of orders (``prefect.yaml``).
CHILD_DEPLOYMENT = "protect-orders/protect-orders"


class DeploymentDispatcher:
    """Child runs of a deployment, one per attempt of a group (use as a context manager)."""

    def __init__(self, parameters: dict[str, Any], deployment: str = CHILD_DEPLOYMENT) -> None:
        self.parameters, self.deployment = parameters, deployment
        self._client: Any = None

    def __enter__(self) -> DeploymentDispatcher:
        self._client = get_client(sync_client=True).__enter__()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.__exit__(t, e, tb)

    def start(self, group: Group) -> str:
        """``run_deployment`` of the group's keys; the same run again for the same attempt."""
        run: FlowRun = run_deployment(  # type: ignore[assignment]  # sync here, never a coroutine
            self.deployment,
            parameters={
                **self.parameters,
                "order_keys": list(group.order_keys),
                "ticket": group.ticket,
            },
            flow_run_name=f"protect-orders {group.ticket}",
            timeout=0,
            idempotency_key=group.idempotency_key,
        )
        return str(run.id)

    def state(self, child: str) -> str:
        """The child run's state type (``SCHEDULED`` when it has none yet)."""
        run = self._client.read_flow_run(UUID(child))
        return str(run.state.type.value) if run.state else "SCHEDULED"

    def abandon(self, child: str, reason: str) -> None:
        """Force the child run to ``Crashed``: its process is gone or will be ignored."""
        self._client.set_flow_run_state(UUID(child), Crashed(message=reason), force=True)

    def exists(self) -> bool:
        """Whether the child deployment exists on the server."""
        from prefect.exceptions import ObjectNotFound

        try:
            self._client.read_deployment_by_name(self.deployment)
        except ObjectNotFound:
            return False
        return True


def child_parameters(config: RunConfig) -> dict[str, Any]:
    """What every child run of a ``protect`` run gets besides its keys (never a secret: the
    ledger and the credentials come from the worker's settings)."""
    return {
        "audit": config.audit_uri,
        "output": config.output_uri,
        "max_concurrent_orders": config.max_concurrent_orders,
        "wait_timeout_seconds": config.wait_timeout,
        "poll_interval_seconds": config.poll_interval,
        "webhook_grace_seconds": config.webhook_grace,
        "completion": config.completion,
    }


def fan_out_orders(
    order_keys: Sequence[str], rt: Runtime, run_id: str, fan_out: int
) -> tuple[dict[str, OrderResult], dict[str, str]] | None:
    """Drive ``order_keys`` through child runs, at most ``fan_out`` at once; then every order's
    result as the ledger has it (open orders ``pending`` with the reason). ``None`` when the
    child deployment does not exist (the caller drives the orders itself)."""
    log = get_run_logger()
    if not order_keys:
        return {}, {}
    policy = FanOutPolicy(fan_out=fan_out, poll_interval=min(rt.config.poll_interval, 5.0))
    with DeploymentDispatcher(child_parameters(rt.config)) as dispatcher:
        if not dispatcher.exists():
            log.warning("deployment %s not found: driving the orders here", CHILD_DEPLOYMENT)
            return None
        progress = cast(UUID, create_progress_artifact(0.0, description="Order groups finished"))

        def done(finished: int, total: int) -> None:
            update_progress_artifact(progress, 100.0 * finished / max(total, 1))

        fan = FanOut(rt.ledger, dispatcher, run_id, policy, on_group_done=done, logger=log)
        report = fan.run(order_keys)
    log.info(
        "%d groups in %d child runs; %d handed on, %d orders given up",
        report.groups,
        len(report.children),
        len(report.handed_on),
        len(report.unfinished),
    )
    claims = rt.ledger.claims(order_keys)
    results = {}
    for key in order_keys:
        result = result_from_ledger(rt.ledger, key, report.unfinished.get(key))
        if key in claims:
            result.attempts = 1 + claims[key].takeovers
        results[key] = result
    return results, {}


def with_children(stats: dict[str, int], rt: Runtime, run_id: str) -> dict[str, int]:
    """A run's own MORI request counts plus those its child runs recorded (none without
    fan-out; a child whose host died recorded nothing)."""
    children = rt.ledger.child_stats(run_id)
    return {key: value + children.get(key, 0) for key, value in stats.items()}


def claim_owner(settings: Settings) -> str:
    """This process in a claim: ``host:pid``, with the name of the worker that started it."""
    return owner_name(settings.worker_name)
