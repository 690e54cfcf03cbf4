"""Decide what a run sends: skip known images, resume open orders, plan and record new ones.

``plan_run`` plans a list of items at once; a ``protect`` run plans a window of image keys at a
time (``triage_run``, then ``plan_window`` per window: :mod:`mori.batch.stream`).
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from mori.batch.estimate import PlanEstimate, PlanRefused, plan_rate
from mori.batch.ledger import Ledger
from mori.batch.manifest import Item
from mori.batch.plan import Approval, Triage, plan_and_record
from mori.batch.runtime import Runtime
from mori.batch.stream import StreamRun


@task(name="plan-orders", cache_policy=NO_CACHE)
def plan_run(
    items: list[Item],
    ledger: Ledger,
    order_size: int,
    output_uri: str | None = None,
    retry_failed: bool = False,
    approve: Approval | None = None,
) -> tuple[Triage, list[str]] | PlanRefused:
    """The triage of the rows and the keys of every order to drive (resumed first).

    ``output_uri`` is recorded with each new order: where ``finalize`` writes its outputs.
    ``retry_failed``: send images that failed for good in earlier runs again. ``approve`` sees
    the plan before anything is recorded; a plan it refuses is returned as
    :class:`PlanRefused` (nothing recorded), so that the flow fails with its one line.
    """
    try:
        found, planned = plan_and_record(
            items, ledger, order_size, output_uri, retry_failed, approve
        )
    except PlanRefused as refused:
        return refused
    return found, found.resume + [o.order_key for o in planned]


@task(name="triage", cache_policy=NO_CACHE)
def triage_run(plan: StreamRun, rt: Runtime) -> PlanEstimate:
    """Look every row up in the ledger, a window of image keys at a time, and estimate the
    plan (nothing recorded); the rows nothing is sent for go to the audit."""
    plan.triage()
    return plan.estimate(
        rate=plan_rate(rt.config.settings),
        usage=rt.client.account_usage(),
        max_new_images=rt.config.max_new_images,
    )


@task(name="plan-orders", cache_policy=NO_CACHE)
def plan_window(plan: StreamRun, number: int) -> list[str]:
    """Plan window ``number``'s new images into orders and record their intent; the keys of
    the orders to drive for it (open orders of earlier runs first)."""
    return plan.commit(number)
