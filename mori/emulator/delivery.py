"""Webhook registration and delivery (signed POSTs with retries, and webhook faults).

One URL per API key; registering again replaces it and rotates the secret. A delivery is one
attempt plus one retry per ``webhook_retry_delays`` entry, on a timeout, a connection error or a
non-2xx answer. The body is compact UTF-8 JSON and ``X-Mori-Signature`` signs exactly those
bytes. Every delivery runs on its own daemon thread, so the API never waits for a receiver.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from mori.emulator.config import EmulatorConfig
from mori.emulator.faults import WEBHOOK, FaultInjector
from mori.emulator.responses import dumps, timestamp, wire
from mori.emulator.stats import Stats
from mori.models import EventData, WebhookEvent
from mori.webhooks import SIGNATURE_HEADER, sign

_JOIN_SECONDS = 5.0


@dataclass(frozen=True)
class Registration:
    """An API key's webhook endpoint and signing secret."""

    url: str
    secret: str


@dataclass(frozen=True)
class Delivery:
    """One event, serialised, bound for one endpoint."""

    event_id: str
    url: str
    secret: str
    body: bytes


class WebhookDispatcher:
    """Keeps webhook registrations and delivers order events in background threads."""

    def __init__(
        self,
        config: EmulatorConfig,
        faults: FaultInjector,
        stats: Stats,
        stop: threading.Event,
    ) -> None:
        self._config = config
        self.faults = faults
        self._stats = stats
        self._stop = stop
        self._lock = threading.Lock()
        self._registrations: dict[str, Registration] = {}
        self._held: dict[str, list[Delivery]] = {}
        self._threads: set[threading.Thread] = set()
        self._http = httpx.Client(timeout=config.webhook_timeout)

    def register(self, api_key: str, url: str) -> str:
        """Set the key's endpoint to ``url``; returns its new secret."""
        secret = secrets.token_hex(32)
        with self._lock:
            self._registrations[api_key] = Registration(url, secret)
        return secret

    def url(self, api_key: str) -> str | None:
        """The key's endpoint, if one is registered."""
        with self._lock:
            registration = self._registrations.get(api_key)
        return registration.url if registration else None

    def delete(self, api_key: str) -> None:
        """Forget the key's endpoint (no-op when there is none)."""
        with self._lock:
            self._registrations.pop(api_key, None)

    def emit(self, api_key: str, data: EventData) -> None:
        """Send an order event to the key's endpoint (if any), subject to webhook faults."""
        with self._lock:
            registration = self._registrations.get(api_key)
        if registration is None:
            self._stats.incr("webhooks_unregistered")
            return
        delivery = self._delivery(registration, data)
        fault = self.faults.decide(WEBHOOK)
        if fault == "lose":
            return
        if fault == "reorder":
            self._hold(api_key, delivery)
            return
        self._spawn(lambda: self._send(api_key, delivery, fault))

    def close(self) -> None:
        """Wait briefly for running deliveries (callers set the stop event first)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(_JOIN_SECONDS)
        self._http.close()

    def _delivery(self, registration: Registration, data: EventData) -> Delivery:
        """The event for ``data``, with a fresh ``eventId``, serialised once."""
        event = WebhookEvent(
            event_id=str(uuid.uuid4()),
            event_type=self._config.webhook_event_type,
            occurred_at=timestamp(self._config.clock()),
            data=data,
        )
        body = dumps(wire(event))
        return Delivery(event.event_id, registration.url, registration.secret, body)

    def _send(self, api_key: str, delivery: Delivery, fault: str | None) -> None:
        """Deliver one event as its fault says, then any events held back to follow it."""
        if fault == "delay" and self._stop.wait(self._config.webhook_delay_seconds):
            return
        self._deliver(delivery, bad_first_signature=fault == "badsig")
        if fault == "dup":
            self._deliver(delivery)
        for held in self._release(api_key):
            self._deliver(held)

    def _hold(self, api_key: str, delivery: Delivery) -> None:
        """Keep ``delivery`` back until the key's next event was sent (or the hold times out)."""
        with self._lock:
            self._held.setdefault(api_key, []).append(delivery)
        self._spawn(lambda: self._send_if_still_held(api_key, delivery))

    def _send_if_still_held(self, api_key: str, delivery: Delivery) -> None:
        """After the hold time, send ``delivery`` unless a later event already released it."""
        if self._stop.wait(self._config.webhook_reorder_hold):
            return
        with self._lock:
            held = self._held.get(api_key, [])
            if delivery not in held:
                return
            held.remove(delivery)
        self._deliver(delivery)

    def _release(self, api_key: str) -> list[Delivery]:
        """Take every event held back for ``api_key``."""
        with self._lock:
            return self._held.pop(api_key, [])

    def _deliver(self, delivery: Delivery, bad_first_signature: bool = False) -> bool:
        """POST until a 2xx answer or the retries are used up."""
        delays = (0.0, *self._config.webhook_retry_delays)
        for attempt, delay in enumerate(delays):
            if delay > 0 and self._stop.wait(delay):
                return False
            secret = delivery.secret
            if bad_first_signature and attempt == 0:
                secret = "not-" + secret
            if self._attempt(delivery, sign(delivery.body, secret)):
                self._stats.incr("webhooks_sent")
                return True
        self._stats.incr("webhooks_failed")
        return False

    def _attempt(self, delivery: Delivery, signature: str) -> bool:
        """One POST; ``True`` on a 2xx answer."""
        self._stats.incr("webhook_attempts")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "mori-emulator",
            SIGNATURE_HEADER: signature,
        }
        try:
            response = self._http.post(delivery.url, content=delivery.body, headers=headers)
        except httpx.HTTPError:
            return False
        return response.is_success

    def _spawn(self, work: Callable[[], None]) -> None:
        """Run ``work`` on a tracked daemon thread."""

        def run() -> None:
            try:
                work()
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name="mori-emulator-webhook", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()
