"""A run's rows triaged, planned and settled a window at a time, in bounded memory.

:class:`StreamRun` takes a run's surveyed rows (:mod:`~.survey`) through two more passes:

1. :meth:`~StreamRun.triage` -- every window is triaged (:mod:`~.triage`) and counted; the rows
   the run settles without sending anything go to the audit at once, and the others (new,
   failed before and retried, in open orders) are kept, on disk when the run is big. Nothing is
   written to the ledger: the counts give the plan's estimate, which a run may refuse.
2. window by window: :meth:`~StreamRun.commit` records the window's orders
   (:mod:`~.windowplan`) and gives the keys of the orders to drive (open orders first, each
   once per run); the caller drives them; :meth:`~StreamRun.settle` writes the window's rows
   with their outcomes to the audit and gives the window's ``orders`` rows.

A run holds one window's rows at a time (about :data:`~.survey.WINDOW_ROWS`), and one window's
orders while they are driven.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from mori.batch.audit import OrderRow
from mori.batch.estimate import PlanCounts, PlanEstimate, estimate_counts
from mori.batch.ledger import Ledger, OrderRecord
from mori.batch.ledger.window import RECORD_SCHEMA
from mori.batch.orders import OrderResult
from mori.batch.outcomes import order_rows
from mori.batch.stream import outcome
from mori.batch.stream.auditing import ImagesTable
from mori.batch.stream.survey import Survey
from mori.batch.stream.triage import SETTLED, State, WindowTriage, count_window, triage_window
from mori.batch.stream.windowplan import WindowPlan, commit_window
from mori.models import AccountUsage

__all__ = ["StreamRun"]

_STATE, _KEY, _RECORD = "__state", "__key", "__record_"


@dataclass
class _Current:
    """The window between :meth:`StreamRun.commit` and :meth:`StreamRun.settle`."""

    number: int
    found: WindowTriage
    plans: list[WindowPlan]
    order_keys: list[str] = field(default_factory=list)


class StreamRun:
    """One run's rows after the survey (see the module docstring).

    ``ledger=None``: no ledger exists yet (a dry run before any run). ``images``: the run's
    ``images`` table; without one (a dry run) only the counts are made.
    """

    def __init__(
        self,
        survey: Survey,
        ledger: Ledger | None,
        folder: Path,
        *,
        order_size: int,
        retry_failed: bool = False,
        output_uri: str | None = None,
        images: ImagesTable | None = None,
        window_rows: int | None = None,
    ) -> None:
        self.survey, self.ledger, self.folder = survey, ledger, folder
        self.order_size, self.retry_failed, self.output_uri = order_size, retry_failed, output_uri
        self.images = images
        self.counts = PlanCounts()
        self._window_rows = window_rows or survey.spool.memory_rows
        self._kept: dict[int, WindowTriage | Path] = {}
        self._open: dict[str, OrderRecord] = {}
        self._driven: set[str] = set()
        self._resumed_results: dict[str, OrderResult] = {}
        self._current: _Current | None = None

    # -- pass 2 --------------------------------------------------------------------------------

    def triage(self) -> PlanCounts:
        """Triage and count every window; settle (to the audit) the rows nothing is sent for."""
        spool, extras = self.survey.spool, self.survey.extras
        for number, window in enumerate(spool.windows(self._window_rows)):
            found = triage_window(spool.read(window, extras), self.ledger, self.retry_failed)
            count_window(self.counts, found, self.order_size)
            if self.images is None:
                continue
            settled = found.where(*SETTLED)
            self._settle_rows(found, settled)
            rest = np.setdiff1d(np.arange(len(found.states)), settled, assume_unique=True)
            if len(rest):
                self._keep(number, _subset(found, rest), spool.on_disk)
            del found
            _release()
        return self.counts

    def estimate(
        self,
        *,
        rate: tuple[int, str],
        usage: AccountUsage | None = None,
        max_new_images: int = 0,
    ) -> PlanEstimate:
        """The plan's numbers, once :meth:`triage` has counted it (see
        :func:`mori.batch.estimate.estimate_counts`)."""
        return estimate_counts(
            self.counts,
            self.resumed_orders(),
            rate=rate,
            usage=usage,
            retry_failed=self.retry_failed,
            max_new_images=max_new_images,
        )

    def images_to_drive(self) -> tuple[int, int]:
        """The orders this run drives and the images they hold: its new orders, and the open
        orders of earlier runs it resumes."""
        resumed = self.resumed_orders()
        held = sum(len(self.ledger.slots(key)) for key in resumed) if self.ledger else 0
        orders = sum(self.counts.orders.values()) + len(resumed)
        return orders, self.counts.new + self.counts.retried + held

    def resumed_orders(self) -> dict[str, OrderRecord]:
        """The open orders of earlier runs that hold rows of this run, in planning order."""
        if self.ledger is None or not self.counts.open_rows:
            return {}
        if not self._open:
            wanted = self.counts.open_rows
            opened = self.ledger.open_orders()
            self._open = {o.order_key: o for o in opened if o.order_key in wanted}
        return self._open

    # -- pass 3 --------------------------------------------------------------------------------

    def windows(self) -> list[int]:
        """The windows with rows to plan or to resume, in order."""
        return sorted(self._kept)

    def commit(self, number: int) -> list[str]:
        """Record window ``number``'s plan; the keys of the orders to drive for it: open orders
        of earlier runs not driven yet in this run, then the new orders."""
        assert self.ledger is not None and self._current is None
        found = self._take(number)
        plans = commit_window(
            found, self.ledger, self.order_size, self.output_uri, self.retry_failed
        )
        current = _Current(number, found, plans)
        opened = found.records.column("order_key").filter(pa.array(found.states == State.OPEN))
        held = set(opened.to_pylist()) - self._driven
        resumed = self.resumed_orders()
        current.order_keys += [key for key in resumed if key in held]  # in planning order
        current.order_keys += sorted(key for key in held - resumed.keys() if self._is_open(key))
        for plan in plans:
            current.order_keys += [key for key, _, _ in plan.orders]
        self._driven.update(current.order_keys)
        self._current = current
        return current.order_keys

    def settle(
        self, results: Mapping[str, OrderResult], crashed: Mapping[str, str], run_id: str
    ) -> list[OrderRow]:
        """Write the current window's rows with their outcomes; its ``orders`` rows."""
        assert self.images is not None and self.ledger is not None and self._current is not None
        current, self._current = self._current, None
        found = current.found
        for key in current.order_keys:
            if key in self._open and key in results:
                self._resumed_results[key] = results[key]
        audited = self.images.columns(found.rows)
        for plan in current.plans:
            rows = audited.take(pa.array(plan.positions))
            keys = found.keys.take(pa.array(plan.positions))
            self.images.add(
                rows, outcome.planned(keys, plan.order_keys, results, crashed, self.ledger)
            )
        opened = found.where(State.OPEN)
        if len(opened):
            taken = pa.array(opened)
            rows, keys = audited.take(taken), found.keys.take(taken)
            every = {**self._resumed_results, **results}
            settled = outcome.resumed(
                rows, keys, found.records.take(taken), every, crashed, self.ledger
            )
            self.images.add(rows, settled)
        self._settle_rows(found, found.where(*SETTLED))
        del found, current
        _release()
        return order_rows(run_id, results, crashed, self.ledger)

    def close(self) -> None:
        """Delete what the run kept on disk."""
        for kept in self._kept.values():
            if isinstance(kept, Path):
                kept.unlink(missing_ok=True)
        self._kept.clear()

    # -- helpers -------------------------------------------------------------------------------

    def _settle_rows(self, found: WindowTriage, positions: np.ndarray) -> None:
        """Write the rows at ``positions`` (all settled without sending) to the audit."""
        if self.images is None or not len(positions):
            return
        taken = pa.array(positions)
        wanted = [*self.images.columns(found.rows).column_names, "error_code", "error_message"]
        rows = found.rows.select(wanted).take(taken)
        settled = outcome.settled(
            rows,
            found.states[positions],
            found.keys.take(taken),
            found.records.take(taken),
            self.ledger,
        )
        self.images.add(rows, settled)

    def _is_open(self, key: str) -> bool:
        """Whether ``key`` is an open order (one another run planned since the triage)."""
        assert self.ledger is not None
        record = self.ledger.order(key)
        if record.status in ("downloaded", "failed", "abandoned"):
            return False
        self._open[key] = record
        return True

    def _keep(self, number: int, found: WindowTriage, on_disk: bool) -> None:
        """Keep a window's unsettled rows for pass 3 (in a file when the run is on disk)."""
        if not on_disk:
            self._kept[number] = found
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"window-{number:04d}.arrow"
        table = found.rows.append_column(_STATE, pa.array(found.states, pa.int8()))
        table = table.append_column(_KEY, found.keys)
        for name in RECORD_SCHEMA.names:
            table = table.append_column(_RECORD + name, found.records.column(name))
        with pa.ipc.new_stream(str(path), table.schema) as writer:
            writer.write_table(table)
        self._kept[number] = path

    def _take(self, number: int) -> WindowTriage:
        """A kept window's rows (deleted from disk once read)."""
        kept = self._kept.pop(number)
        if isinstance(kept, WindowTriage):
            return kept
        with pa.ipc.open_stream(str(kept)) as reader:
            table = reader.read_all()
        kept.unlink(missing_ok=True)
        names = table.column_names
        records = pa.table(
            [table.column(_RECORD + name) for name in RECORD_SCHEMA.names], schema=RECORD_SCHEMA
        )
        rows = table.select([n for n in names if not n.startswith("__")])
        states = table.column(_STATE).to_numpy().astype(np.int8)
        keys = table.column(_KEY).combine_chunks()
        return WindowTriage(rows, states, keys, records)


def _subset(found: WindowTriage, positions: np.ndarray) -> WindowTriage:
    """The rows of ``found`` at ``positions`` (ascending)."""
    if len(positions) == len(found.states):
        return found
    taken = pa.array(positions)
    return WindowTriage(
        found.rows.take(taken),
        found.states[positions].copy(),
        found.keys.take(taken),
        found.records.take(taken),
    )


def _release() -> None:
    """Hand the memory Arrow freed back to the system (its allocator keeps it otherwise)."""
    pa.default_memory_pool().release_unused()
