"""Drive one order (≤ 100 images) through MORI: one task run per order, never per image."""

from __future__ import annotations

from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.runtime import task_run

from mori.batch.orders import OrderProcessor, OrderResult
from mori.retry import RetryPolicy


def retry_if_transient(task: Task[..., object], run: TaskRun, state: State) -> bool:
    """Prefect retries an order only for errors that may pass (network, 408, 429, 5xx)."""
    try:
        state.result()
    except Exception as exc:
        return RetryPolicy.is_retryable(exc)
    return False


@task(
    name="process-order",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_if_transient,
)
def process_order(order_key: str, processor: OrderProcessor) -> OrderResult:
    """Create, upload, confirm, wait, download and verify; resumable from the ledger."""
    result = processor.process(order_key)
    if result.attempts:  # 0: another process drove it, this run made no attempt
        result.attempts = task_run.run_count
    return result
