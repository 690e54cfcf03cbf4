"""The plan in numbers: every row counted once, API calls by the documented formula, usage, the
``max_new_images`` and usage-limit guard, and a dry run that writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mori.batch.estimate import (
    SMALLEST_PLAN_RPM,
    PlanEstimate,
    PlanGuard,
    PlanRefused,
    dry_run,
    markdown,
    plan_rate,
)
from mori.batch.ledger import Ledger
from mori.batch.manifest import Item
from mori.batch.plan import plan_and_record
from mori.models import AccountUsage
from mori.settings import Settings

from .test_plan import make_item

RATE = (60, "test")


def history(ledger: Ledger, open_status: str) -> list[Item]:
    """283 rows: 100 images processed before, 50 in an order left at ``open_status``, 10 failed
    for good, 90 new files, 30 new URLs and 3 bad rows."""
    files = [make_item(i, i, "file") for i in range(250)]
    urls = [make_item(250 + i, 1000 + i, "url") for i in range(30)]
    bad = [
        make_item(280, 5000, "file", "FILE_NOT_FOUND"),
        make_item(281, 5001, "file", "FILE_NOT_FOUND"),
        make_item(282, 5002, "s3", "INVALID_IMAGE"),
    ]
    plan_and_record(files[:100], ledger, 100)
    (order,) = [o.order_key for o in ledger.open_orders()]
    for item in files[:100]:
        ledger.image_done(item.image_key or "", f"/out/{item.row_index}.jpg", "a" * 64)
    ledger.advance(order, "downloaded", order_id="1")
    _, (left_open,) = plan_and_record(files[100:150], ledger, 100)
    if open_status != "planned":
        ledger.advance(left_open.order_key, open_status, order_id="2")
    _, (failing,) = plan_and_record(files[150:160], ledger, 100)
    ledger.fail_order(failing.order_key, "ORDER_FAILED", "MORI failed it")
    return files + urls + bad


def snapshot(ledger: Ledger, items: list[Item]) -> Any:
    keys = [it.image_key for it in items if it.image_key]
    return ledger.orders(), sorted(ledger.images(keys).items()), ledger.image_statuses()


@pytest.mark.parametrize(
    ("open_status", "calls_left", "unconfirmed"),
    [("planned", 4, 50), ("created", 4, 50), ("confirmed", 2, 0), ("complete", 1, 0)],
)
def test_every_row_is_counted_once(
    ledger: Ledger, open_status: str, calls_left: int, unconfirmed: int
) -> None:
    items = history(ledger, open_status)
    usage = AccountUsage(currentUsage=500, usageLimit=1000)
    plan = dry_run(items, ledger, 100, rate=RATE, usage=usage)
    assert (plan.rows, plan.bad_rows, plan.new_images) == (283, 3, 120)
    assert (plan.known_images, plan.failed_before, plan.in_open_orders) == (100, 10, 50)
    assert plan.rows == (
        plan.bad_rows
        + plan.new_images
        + plan.known_images
        + plan.failed_before
        + plan.in_open_orders
    )
    assert plan.bad_rows_by_code == {"FILE_NOT_FOUND": 2, "INVALID_IMAGE": 1}
    assert (plan.orders, plan.resumed_orders) == (2, 1)  # 90 files, 30 URLs; the open one
    assert plan.api_calls == 4 + 3 + calls_left
    assert plan.estimated_minutes == -(-10 * plan.api_calls // 60) / 10
    assert (plan.usage_before, plan.usage_limit) == (500, 1000)
    assert plan.usage_after == 500 + 120 + unconfirmed
    assert plan.refusal is None


def test_retrying_failed_images_plans_them_again_and_a_dry_run_writes_nothing(
    ledger: Ledger,
) -> None:
    items = history(ledger, "confirmed")
    before = snapshot(ledger, items)
    plan = dry_run(items, ledger, 100, rate=RATE, retry_failed=True)
    assert snapshot(ledger, items) == before
    assert (plan.failed_before, plan.images_to_send, plan.orders) == (10, 130, 3)
    assert plan.api_calls == 4 + 3 + 4 + 2


def test_a_run_would_start_from_nothing_without_a_ledger() -> None:
    items = [make_item(i, i, "s3") for i in range(201)] + [make_item(201, 7, "s3", "EMPTY_FILE")]
    plan = dry_run(items, None, 50, rate=(300, "MORI_RATE_LIMIT_RPM"))
    assert (plan.new_images, plan.orders, plan.api_calls) == (201, 5, 20)
    assert (plan.rate_per_minute, plan.estimated_minutes) == (300, 0.1)


@pytest.mark.parametrize(
    ("max_new_images", "usage", "refused"),
    [
        (130, None, None),
        (0, None, None),
        (129, None, "max_new_images (129)"),
        (0, AccountUsage(currentUsage=870, usageLimit=1000), None),
        (0, AccountUsage(currentUsage=871, usageLimit=1000), "1,001 images, past its plan"),
        (0, AccountUsage(currentUsage=871), None),  # no limit reported
    ],
)
def test_the_guard_refuses_a_plan_before_anything_is_recorded(
    ledger: Ledger, max_new_images: int, usage: AccountUsage | None, refused: str | None
) -> None:
    items = history(ledger, "confirmed")
    before = snapshot(ledger, items)
    guard = PlanGuard(
        items, ledger, rate=RATE, usage=usage, retry_failed=True, max_new_images=max_new_images
    )
    if refused is None:
        plan_and_record(items, ledger, 100, retry_failed=True, approve=guard)
        assert guard.estimate is not None and guard.estimate.images_to_send == 130
        assert snapshot(ledger, items) != before
        return
    with pytest.raises(PlanRefused) as caught:
        plan_and_record(items, ledger, 100, retry_failed=True, approve=guard)
    message = caught.value.message
    assert refused in message and "\n" not in message
    assert caught.value.estimate is guard.estimate
    assert snapshot(ledger, items) == before  # nothing recorded, failed images still failed
    if max_new_images:
        assert "130 images" in message and "--max-new-images" in message


def test_the_rate_comes_from_the_plan_or_the_smallest_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MORI_RATE_LIMIT_RPM", raising=False)
    assert plan_rate(Settings()) == (SMALLEST_PLAN_RPM, plan_rate(Settings())[1])
    assert "MORI_RATE_LIMIT_RPM" in plan_rate(Settings())[1]
    monkeypatch.setenv("MORI_RATE_LIMIT_RPM", "1000")
    assert plan_rate(Settings()) == (1000, "MORI_RATE_LIMIT_RPM")


def test_json_and_markdown() -> None:
    plan = dry_run([make_item(0, 1, "url")], None, 100, rate=RATE)
    data = json.loads(json.dumps(plan.as_dict()))
    assert set(data) == {f for f in PlanEstimate.__dataclass_fields__} - {
        "usage_before",
        "usage_after",
        "usage_limit",
    }
    usage = AccountUsage(currentUsage=1, usageLimit=2)
    with_usage = dry_run([make_item(0, 1, "url")], None, 100, rate=RATE, usage=usage)
    assert with_usage.as_dict()["usage_after"] == 2
    text = markdown(with_usage)
    assert text.startswith("# Plan") and "| API calls | 3 |" in text and "1 -> 2 / 2" in text
