"""A faithful local emulator of MORI's Anti-AI filter API (primary generation G1).

Start it with :class:`EmulatorServer` (tests, demo) or :func:`run` (CLI); build the ASGI app
alone with :func:`create_app`. Choices the public docs leave open (ASSUMED):

* Orders: ids are numeric strings from ``100000001``; ``fileKey`` is
  ``temp/{orderId}/{index}/{fileName}``; upload and result URLs are the emulator's own
  presigned-style URLs (``/_s3/upload/...``, ``/_s3/result/{orderId}.zip``), 403 + S3 XML error
  after expiry or with a bad signature, 403 for an upload to an order that is no longer pending.
* Idempotency: scope (API key, path); only successful answers are recorded and replayed byte
  for byte (header ``Idempotent-Replayed: true``); a failed request records nothing.
* Rate limit: a fixed 60 s window per key, opened by the key's first request in it; every
  authenticated ``/api/v2`` call counts, presigned storage calls do not.
* Processing: an order fails as soon as one file fails (``errors`` lists each failed file as
  ``{index}/{fileName}: ...``; codes ``INVALID_IMAGE``, ``MISSING_UPLOAD``, ``FETCH_FAILED``);
  a complete order's result is a zip with one entry per file named ``{index}/{fileName}``.
  With-urls sources are fetched without following redirects.
* Stats: ``orders_confirmed`` counts orders that entered processing (confirm, or
  create-with-urls); ``files_processed`` and ``duplicate_files`` count files of complete orders.
* Faults: ``timeout`` holds the request ``fault_hang_seconds``, then closes the connection
  without processing; ``any`` covers the seven HTTP targets, not webhook registration.
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
