"""A planning process for test_planning_lock: plans overlapping windows of images, each under
the planning lock, the way a ``protect`` run plans (read what is known, record the rest).

Usage: ``python planner_child.py LEDGER_URL WORKER ROUNDS``. Prints ``ready`` once its ledger is
open, waits for a line on stdin (so that every planner starts together), then plans.
"""

from __future__ import annotations

import sys

from mori.batch.ledger import Ledger, Slot

IMAGES = 1200
WINDOW = 300
ORDER_SIZE = 7


def window(worker: int, round_: int) -> list[str]:
    """The image keys a worker plans in one round: each worker starts in a region of its own
    and moves on into the others' regions."""
    start = worker * 400 + round_ * 70
    return [f"img-{i % IMAGES:05d}" for i in range(start, start + WINDOW)]


def plan_round(ledger: Ledger, worker: int, round_: int) -> None:
    """Plan every image of the window the ledger does not know yet."""
    keys = window(worker, round_)
    with ledger.exclusive():
        known = ledger.images(keys)
        new = [k for k in keys if k not in known]
        orders = [
            (
                f"w{worker}-r{round_}-o{n}",
                "url",
                [Slot(i, k, f"{k}.jpg", f"https://h/{k}.jpg") for i, k in enumerate(chunk)],
                0,
            )
            for n, chunk in enumerate(
                new[start : start + ORDER_SIZE] for start in range(0, len(new), ORDER_SIZE)
            )
        ]
        ledger.plan_many(orders, {}, url_fingerprints=True)


def main(url: str, worker: int, rounds: int) -> None:
    with Ledger(url) as ledger:
        print("ready", flush=True)
        sys.stdin.readline()
        for round_ in range(rounds):
            plan_round(ledger, worker, round_)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
