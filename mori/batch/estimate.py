"""What a run would do and spend, in numbers: the plan's estimate, and the guard against too much.

:func:`estimate` counts a run's triage and planned orders; :func:`dry_run` makes them as a run
would (:func:`mori.batch.plan.triage_and_plan`) without writing anything. :func:`check` refuses a
plan that sends more images than ``max_new_images`` or would take the account past its usage
limit (:class:`PlanRefused`: one line that says how to go on).

Every row falls in exactly one of ``bad_rows``, ``new_images`` (never sent before),
``known_images`` (processed before: skipped), ``failed_before`` (failed for good earlier: failed
again, or sent again with ``retry_failed``) and ``in_open_orders`` (in an order an earlier run
left open: resumed).

``api_calls`` are the MORI requests that count against the plan's rate limit:

    per upload order:  create + confirm + one status check + the download link  = 4
    per URL order:     create + one status check + the download link            = 3

an order resumed from an earlier run only its remaining steps (confirmed: 2, complete: 1).
Presigned uploads and downloads are not API calls; a sign-in (email and password) is not
counted, nor are status checks beyond the first while MORI is still processing.
``estimated_minutes`` is ``api_calls`` at ``rate_per_minute``: ``MORI_RATE_LIMIT_RPM``, else
MORI's smallest plan (60 per minute), and leaves out MORI's processing time.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mori.batch.ledger import Ledger, OrderRecord
from mori.batch.manifest import Item
from mori.batch.plan import PlannedOrder, Triage, triage_and_plan
from mori.models import AccountUsage
from mori.settings import Settings

if TYPE_CHECKING:
    from mori.batch.runtime import Runtime

__all__ = [
    "CALLS_PER_ORDER",
    "SMALLEST_PLAN_RPM",
    "PlanCounts",
    "PlanEstimate",
    "PlanGuard",
    "PlanRefused",
    "check",
    "counts_of",
    "dry_run",
    "estimate",
    "estimate_counts",
    "markdown",
    "plan_rate",
    "refusal",
    "resumed_orders",
    "table",
]

#: API calls an order needs from start to end, by kind (see the module docstring).
CALLS_PER_ORDER = {"upload": 4, "url": 3}
#: Requests per minute of MORI's smallest plan: the rate assumed when none is configured.
SMALLEST_PLAN_RPM = 60
#: Calls left for an order resumed at a status (``planned``..``uploaded``: the whole order).
_CALLS_LEFT = {"confirmed": 2, "complete": 1}
_USAGE_KEYS = ("usage_before", "usage_after", "usage_limit")
Row = tuple[str, str]


class PlanRefused(Exception):
    """A run refuses its plan before recording anything (``estimate`` says what it was)."""

    def __init__(self, message: str, estimate: PlanEstimate) -> None:
        self.message, self.estimate = message, estimate
        super().__init__(message)


@dataclass(frozen=True)
class PlanEstimate:
    """A run's plan in numbers (see the module docstring for each count)."""

    rows: int
    new_images: int
    known_images: int
    failed_before: int
    in_open_orders: int
    bad_rows: int
    bad_rows_by_code: dict[str, int]
    orders: int  # to create (new images, and failed ones sent again)
    resumed_orders: int
    api_calls: int
    rate_per_minute: int
    rate_source: str
    estimated_minutes: float
    retry_failed: bool = False
    max_new_images: int = 0
    usage_before: int | None = None
    usage_after: int | None = None
    usage_limit: int | None = None
    #: Why a run would refuse this plan (``None``: it would go ahead).
    refusal: str | None = None

    @property
    def images_to_send(self) -> int:
        """Images this run puts in new orders: the new ones, and the failed ones it retries."""
        return self.new_images + (self.failed_before if self.retry_failed else 0)

    def as_dict(self) -> dict[str, Any]:
        """The estimate as JSON-ready data; the usage keys only when the usage is known."""
        data = asdict(self)
        for key in _USAGE_KEYS:
            if data[key] is None:
                del data[key]
        return data


def plan_rate(settings: Settings) -> tuple[int, str]:
    """The requests per minute to estimate with, and where that number comes from."""
    if settings.rpm:
        return settings.rpm, "MORI_RATE_LIMIT_RPM"
    return SMALLEST_PLAN_RPM, "MORI's smallest plan (MORI_RATE_LIMIT_RPM not set)"


@dataclass
class PlanCounts:
    """A run's rows and plan counted (by :func:`counts_of`, or window by window)."""

    rows: int = 0
    new: int = 0
    #: Rows failed for good in an earlier run and sent again (``retry_failed``).
    retried: int = 0
    #: Valid rows found in the ledger, by the status of their record.
    statuses: Counter[str] = field(default_factory=Counter)
    #: Bad rows by error code.
    bad: Counter[str] = field(default_factory=Counter)
    #: Orders the plan creates, by kind (``upload``, ``url``).
    orders: Counter[str] = field(default_factory=Counter)
    #: Rows in each order an earlier run left open, by order key.
    open_rows: Counter[str] = field(default_factory=Counter)


def counts_of(items: Sequence[Item], found: Triage, planned: Sequence[PlannedOrder]) -> PlanCounts:
    """The counts of a triage of ``items`` and its planned orders."""
    return PlanCounts(
        rows=len(items),
        new=len(found.new),
        retried=len(found.retried),
        statuses=Counter(record.status for record in found.known.values())
        + Counter(failed=len(found.retried)),
        bad=Counter(it.error_code for it in items if it.error_code is not None),
        orders=Counter(order.kind for order in planned),
        open_rows=Counter(
            record.order_key for record in found.known.values() if record.status == "planned"
        ),
    )


def estimate(
    items: Sequence[Item],
    found: Triage,
    planned: Sequence[PlannedOrder],
    resumed: Mapping[str, OrderRecord],
    *,
    rate: tuple[int, str],
    usage: AccountUsage | None = None,
    retry_failed: bool = False,
    max_new_images: int = 0,
) -> PlanEstimate:
    """The numbers of a triage and its planned orders; ``resumed`` holds the ledger's record of
    each order ``found.resume`` names."""
    return estimate_counts(
        counts_of(items, found, planned),
        resumed,
        rate=rate,
        usage=usage,
        retry_failed=retry_failed,
        max_new_images=max_new_images,
    )


def estimate_counts(
    counts: PlanCounts,
    resumed: Mapping[str, OrderRecord],
    *,
    rate: tuple[int, str],
    usage: AccountUsage | None = None,
    retry_failed: bool = False,
    max_new_images: int = 0,
) -> PlanEstimate:
    """The numbers of a plan from its counts; ``resumed`` holds the ledger's record of each
    open order the run resumes."""
    statuses = counts.statuses
    failed = counts.retried if retry_failed else statuses["failed"]
    calls = sum(CALLS_PER_ORDER[kind] * n for kind, n in counts.orders.items())
    calls += sum(_calls_left(record) for record in resumed.values())
    per_minute, source = rate
    unconfirmed = sum(
        n
        for key, n in counts.open_rows.items()
        if key in resumed and not resumed[key].reached("confirmed")
    )
    result = PlanEstimate(
        rows=counts.rows,
        new_images=counts.new,
        known_images=statuses["processed"],
        failed_before=failed,
        in_open_orders=statuses["planned"],
        bad_rows=sum(counts.bad.values()),
        bad_rows_by_code=dict(sorted(counts.bad.items())),
        orders=sum(counts.orders.values()),
        resumed_orders=len(resumed),
        api_calls=calls,
        rate_per_minute=per_minute,
        rate_source=source,
        estimated_minutes=math.ceil(10 * calls / per_minute) / 10,
        retry_failed=retry_failed,
        max_new_images=max_new_images,
    )
    if usage is not None and usage.current_usage is not None:
        sent = result.images_to_send + unconfirmed
        result = replace(
            result,
            usage_before=usage.current_usage,
            usage_after=usage.current_usage + sent,
            usage_limit=usage.usage_limit,
        )
    return replace(result, refusal=refusal(result))


def refusal(plan: PlanEstimate) -> str | None:
    """Why a run refuses ``plan`` (one line that says how to go on), or ``None``."""
    if plan.max_new_images and plan.images_to_send > plan.max_new_images:
        return (
            f"this run would send {plan.images_to_send:,} images to MORI, more than "
            f"max_new_images ({plan.max_new_images:,}): raise it (--max-new-images N, or the "
            "max_new_images parameter; 0 = no limit) to go ahead"
        )
    limit, after = plan.usage_limit, plan.usage_after
    if limit is not None and after is not None and after > limit:
        return (
            f"this run would take the account's usage to {after:,} images, past its plan's "
            f"limit of {limit:,} ({plan.usage_before:,} used): raise the plan's limit at MORI "
            "or send fewer images (e.g. a smaller manifest) to go ahead"
        )
    return None


def check(plan: PlanEstimate) -> None:
    """Raise :class:`PlanRefused` when a run must not go ahead with ``plan``."""
    if plan.refusal is not None:
        raise PlanRefused(plan.refusal, plan)


def resumed_orders(found: Triage, ledger: Ledger | None) -> dict[str, OrderRecord]:
    """The ledger's record of each order the triage resumes."""
    if ledger is None:
        return {}
    return {key: ledger.order(key) for key in found.resume}


class PlanGuard:
    """A run's approval of its plan (:data:`mori.batch.plan.Approval`): it estimates the plan,
    keeps the estimate (for the UI), and refuses the plan by raising :class:`PlanRefused`."""

    def __init__(
        self,
        items: Sequence[Item],
        ledger: Ledger,
        *,
        rate: tuple[int, str],
        usage: AccountUsage | None = None,
        retry_failed: bool = False,
        max_new_images: int = 0,
    ) -> None:
        self._items, self._ledger, self._rate, self._usage = items, ledger, rate, usage
        self._retry_failed, self._max_new_images = retry_failed, max_new_images
        #: The estimate of the plan last approved or refused (``None`` before).
        self.estimate: PlanEstimate | None = None

    @classmethod
    def for_run(cls, items: Sequence[Item], rt: Runtime, retry_failed: bool) -> PlanGuard:
        """The guard of a run: its ledger, its rate, ``max_new_images``, and the account's usage
        when MORI reports it (signing in first, with email and password)."""
        return cls(
            items,
            rt.ledger,
            rate=plan_rate(rt.config.settings),
            usage=rt.client.account_usage(),
            retry_failed=retry_failed,
            max_new_images=rt.config.max_new_images,
        )

    def __call__(self, found: Triage, planned: list[PlannedOrder]) -> None:
        """Estimate the plan; raise :class:`PlanRefused` when the run must not go ahead."""
        self.estimate = estimate(
            self._items,
            found,
            planned,
            resumed_orders(found, self._ledger),
            rate=self._rate,
            usage=self._usage,
            retry_failed=self._retry_failed,
            max_new_images=self._max_new_images,
        )
        check(self.estimate)


def dry_run(
    items: Sequence[Item],
    ledger: Ledger | None,
    order_size: int,
    *,
    rate: tuple[int, str],
    usage: AccountUsage | None = None,
    retry_failed: bool = False,
    max_new_images: int = 0,
) -> PlanEstimate:
    """What a run of ``items`` would do, as :func:`estimate`; reads ``ledger``, writes nothing."""
    found, planned = triage_and_plan(items, ledger, order_size, retry_failed, dry_run=True)
    return estimate(
        items,
        found,
        planned,
        resumed_orders(found, ledger),
        rate=rate,
        usage=usage,
        retry_failed=retry_failed,
        max_new_images=max_new_images,
    )


def _calls_left(record: OrderRecord) -> int:
    """API calls an open order still needs."""
    return _CALLS_LEFT.get(record.status, CALLS_PER_ORDER.get(record.kind, 4))


def table(plan: PlanEstimate) -> list[Row]:
    """The estimate as (what, how many) rows for a person: the CLI's table and the artifact's."""
    rows: list[Row] = [
        ("rows", f"{plan.rows:,}"),
        ("new images", f"{plan.new_images:,}"),
        ("known images (processed before: skipped)", f"{plan.known_images:,}"),
        (
            "failed before (sent again)" if plan.retry_failed else "failed before (stay failed)",
            f"{plan.failed_before:,}",
        ),
        ("in open orders (resumed)", f"{plan.in_open_orders:,}"),
        ("bad rows", f"{plan.bad_rows:,}"),
        *((f"  {code}", f"{n:,}") for code, n in plan.bad_rows_by_code.items()),
        ("orders to create", f"{plan.orders:,}"),
        ("orders to resume", f"{plan.resumed_orders:,}"),
        ("API calls", f"{plan.api_calls:,}"),
        ("estimated minutes", f"{plan.estimated_minutes:,} at {plan.rate_per_minute}/min"),
    ]
    if plan.usage_after is not None:
        limit = "?" if plan.usage_limit is None else f"{plan.usage_limit:,}"
        rows.append(
            (
                "usage (before -> after / limit)",
                f"{plan.usage_before:,} -> {plan.usage_after:,} / {limit}",
            )
        )
    return rows


def markdown(plan: PlanEstimate) -> str:
    """The estimate as a markdown table (the ``protect-plan`` artifact)."""
    lines = ["# Plan", "", "| | |", "|---|---:|"]
    lines += [f"| {what.strip()} | {value} |" for what, value in table(plan)]
    lines += ["", f"Rate: {plan.rate_per_minute} requests per minute ({plan.rate_source})."]
    if plan.refusal:
        lines += ["", f"**Refused:** {plan.refusal}"]
    return "\n".join(lines)
