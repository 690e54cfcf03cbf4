"""A faithful local emulator of MORI's Anti-AI filter API, in either documented dialect.

Start it with :class:`EmulatorServer` (tests, demo) or :func:`run` (CLI); build the ASGI app
alone with :func:`create_app`. ``EmulatorConfig.generation`` picks the dialect: ``g1`` (the
primary contract: ``/orders``, ``/orders/with-urls``, ``/orders/confirm``, ``/webhook``,
``X-Idempotency-Key``, ``{"success", "message", "data"}``) or ``g3`` (``/orders/anti-ai``,
``/orders/anti-ai/confirm``, ``/orders/webhooks``, body ``idempotencyKey``, ``{"data"}``).
Choices the public docs leave open (ASSUMED):

* Orders: ids are numeric strings from ``100000001``; ``fileKey`` is
  ``temp/{orderId}/{index}/{fileName}``; upload and result URLs are the emulator's own
  presigned-style URLs (``/_s3/upload/...``, ``/_s3/result/{orderId}.zip``), 403 + S3 XML error
  after expiry or with a bad signature, 403 for an upload to an order that is no longer pending
  or to a file fetched from its URL.
* Idempotency: scope (account, path); only successful answers are recorded and replayed byte
  for byte (header ``Idempotent-Replayed: true``); a failed request records nothing. ``g1``
  reads ``X-Idempotency-Key`` (else the body's ``idempotencyKey``); ``g3`` only the body's.
* Errors: every 400 ``INVALID_REQUEST`` carries ``errors = {"propertyName", "message"}`` for
  the first problem (``files[0].fileName``, ``orderName``, ``orderId``, ``body``...). ``g3``
  errors are ``{"code", "message", "errors"?}`` with the same statuses and codes as ``g1``.
  Each generation answers the other one's routes with 404 ``NOT_FOUND`` (never 405).
* Accounts: an account is named by its API key. Each ``logins`` entry gets a generated API key;
  ``POST /api/v2/auth/login`` (both generations) answers its ``user`` and ``contract`` and an
  opaque ``accessToken`` header valid ``token_ttl`` seconds, usable as the Bearer value like the
  key itself (same orders, idempotency keys, rate limit and webhooks). An expired token gets 401
  ``UNAUTHORIZED`` saying so. Emails match ignoring case; user ids count from 1 in email order;
  ``planType`` is ``free``, ``planStartDate`` the emulator's start, ``planEndDate`` null.
* Usage: ``currentUsage`` counts the files of the account's orders sent to processing (confirm,
  or a URL-only create); ``usageLimit`` is ``usage_limit``. Only with ``enforce_usage_limit`` a
  create whose files would take the account past it gets 403 ``USAGE_LIMIT_EXCEEDED``.
* Rate limit: a fixed 60 s window per account, opened by its first request in it; every
  authenticated ``/api/v2`` call counts, login and presigned storage calls do not.
* ``g3`` orders: files without ``originalFileUrl`` get an ``uploadUrl`` and ``fileKey``; URL files
  neither. Every file by URL: ``inProgress`` at once; otherwise ``pending`` until confirm, which
  needs only the upload files.
* Webhooks: ``g1`` keeps one URL per account (a new registration replaces it and its secret);
  ``g3`` any number, each with an integer id, a name (the URL unless given) and a
  ``whsec_``-prefixed secret answered once; DELETE of an unknown id is 404
  ``WEBHOOK_NOT_FOUND``. Each event goes to every webhook of the account with one ``eventId``;
  ``g3`` events are ``order.antiAi.completed`` / ``order.antiAi.failed`` signed in
  ``X-MoriBiz-Signature`` (HMAC keyed with the whole secret string, prefix included). Every
  delivery attempt is bounded as a whole by ``webhook_timeout``.
* Processing: an order fails as soon as one file fails (``errors`` lists each failed file as
  ``{index}/{fileName}: ...``; codes ``INVALID_IMAGE``, ``MISSING_UPLOAD``, ``FETCH_FAILED``);
  a complete order's result is a zip with one entry per file named ``{index}/{fileName}``.
  URL sources are fetched without following redirects. ``processing_mode="copy"`` skips the
  filter: outputs then equal inputs (for rate-limit benchmarks on small machines).
* Stats: ``orders_confirmed`` counts orders that entered processing (confirm, or a URL-only
  create); ``files_processed`` and ``duplicate_files`` count files of complete orders; ``usage``
  maps each account (its email, or ``key:`` + 12 hex digits of the key's SHA-256) to its usage.
* Faults: ``timeout`` holds the request ``fault_hang_seconds``, then closes the connection
  without processing; ``create`` is the create route of either generation (``g3``'s also for
  URL files), ``with_urls`` the ``g1`` URL route; ``any`` covers the seven HTTP targets, not
  login or webhook registration.
"""

from mori.emulator.app import create_app
from mori.emulator.config import EmulatorConfig
from mori.emulator.core import Emulator
from mori.emulator.faults import FaultRule, parse_faults
from mori.emulator.imaging import InvalidImageError, perturb, psnr
from mori.emulator.s3server import LocalS3, s3_client
from mori.emulator.server import EmulatorServer, run

__all__ = [
    "Emulator",
    "EmulatorConfig",
    "EmulatorServer",
    "FaultRule",
    "InvalidImageError",
    "LocalS3",
    "create_app",
    "parse_faults",
    "perturb",
    "psnr",
    "run",
    "s3_client",
]
