"""Decide what a run sends: skip known images, resume open orders, plan and record new ones."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from mori.batch.estimate import PlanRefused
from mori.batch.ledger import Ledger
from mori.batch.manifest import Item
from mori.batch.plan import Approval, Triage, plan_and_record


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
