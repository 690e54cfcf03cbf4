"""Fault injection: parse the fault spec and decide, reproducibly, which request misbehaves.

Spec: comma-separated ``TARGET:FAULT=PROBABILITY``, e.g.
``create:drop=0.05,confirm:503=0.1,any:429=0.05,webhook:dup=0.3``.

* HTTP targets: ``create`` (``POST /orders``; in ``g3`` ``POST /orders/anti-ai``, URL files
  included), ``with_urls`` (``g1``'s ``POST /orders/with-urls``), ``confirm``, ``get``,
  ``download``, ``upload``, ``result``; ``any`` means every one of them. HTTP faults:
  ``500``, ``503``, ``429`` (with ``Retry-After``), ``timeout`` (hold the request past the
  client's timeout, then close the connection without processing it), ``drop`` (process the
  request fully, then close the connection without answering), ``reset`` (close the
  connection, with a TCP reset, before processing).
* Target ``webhook`` takes the delivery faults ``dup`` (deliver twice), ``lose`` (never
  deliver), ``delay`` (deliver late), ``reorder`` (deliver after the next event), ``badsig``
  (first attempt carries a wrong signature), decided per delivery (one event to one webhook).

For each request (or webhook event) the matching rules draw, in spec order, from one
``random.Random(seed)`` under a lock until one fires; the first rule that fires wins. The same
seed and the same sequence of requests therefore inject the same faults. Injected faults are
counted in the stats as ``"<endpoint>:<fault>"`` (an ``any`` rule counts under the endpoint it
hit).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from mori.emulator.stats import Stats

HTTP_TARGETS: frozenset[str] = frozenset(
    {"create", "with_urls", "confirm", "get", "download", "upload", "result"}
)
HTTP_FAULTS: frozenset[str] = frozenset({"500", "503", "429", "timeout", "drop", "reset"})
WEBHOOK_FAULTS: frozenset[str] = frozenset({"dup", "lose", "delay", "reorder", "badsig"})
ANY = "any"
WEBHOOK = "webhook"


@dataclass(frozen=True)
class FaultRule:
    """One ``TARGET:FAULT=PROBABILITY`` entry."""

    target: str
    fault: str
    probability: float

    def __str__(self) -> str:
        return f"{self.target}:{self.fault}={self.probability:g}"


def parse_faults(spec: str) -> tuple[FaultRule, ...]:
    """The rules of a fault spec (``""`` = none); ``ValueError`` naming the bad entry."""
    if not spec.strip():
        return ()
    rules = tuple(_parse_rule(item.strip()) for item in spec.split(","))
    seen: set[tuple[str, str]] = set()
    for rule in rules:
        if (rule.target, rule.fault) in seen:
            raise ValueError(f"fault spec: {rule.target}:{rule.fault} is given twice")
        seen.add((rule.target, rule.fault))
    return rules


def _parse_rule(item: str) -> FaultRule:
    """One spec entry, validated."""
    head, eq, value = item.partition("=")
    target, colon, fault = head.strip().partition(":")
    target, fault = target.strip().lower(), fault.strip().lower()
    if not (eq and colon and target and fault):
        raise ValueError(f"fault spec: {item!r} is not TARGET:FAULT=PROBABILITY")
    if target not in HTTP_TARGETS | {ANY, WEBHOOK}:
        known = ", ".join(sorted(HTTP_TARGETS | {ANY, WEBHOOK}))
        raise ValueError(f"fault spec: unknown target {target!r} in {item!r} (known: {known})")
    allowed = WEBHOOK_FAULTS if target == WEBHOOK else HTTP_FAULTS
    if fault not in allowed:
        names = ", ".join(sorted(allowed))
        raise ValueError(f"fault spec: {target!r} cannot take fault {fault!r} (allowed: {names})")
    try:
        probability = float(value)
    except ValueError:
        message = f"fault spec: probability {value.strip()!r} in {item!r} is not a number"
        raise ValueError(message) from None
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"fault spec: probability in {item!r} must be between 0 and 1")
    return FaultRule(target, fault, probability)


class FaultInjector:
    """Seeded, thread-safe decisions of which fault (if any) a request or event gets."""

    def __init__(self, spec: str, seed: int, stats: Stats) -> None:
        self.rules = parse_faults(spec)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stats = stats

    def decide(self, target: str) -> str | None:
        """The fault to inject into one request or webhook event for ``target``, or ``None``."""
        rules = [r for r in self.rules if r.target == target or _any_covers(r, target)]
        if not rules:
            return None
        with self._lock:
            fired = next((r for r in rules if self._rng.random() < r.probability), None)
        if fired is None:
            return None
        self._stats.fault(f"{target}:{fired.fault}")
        return fired.fault


def _any_covers(rule: FaultRule, target: str) -> bool:
    """Whether an ``any`` rule applies to ``target`` (every HTTP target, never webhooks)."""
    return rule.target == ANY and target in HTTP_TARGETS
