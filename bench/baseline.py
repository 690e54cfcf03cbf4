"""A minimal hand-written MORI client: asyncio + httpx, every order at once, nothing else.

The yardstick of ``bench.throughput``: for each chunk of ≤ 100 files it makes exactly the calls
the pipeline makes -- create, PUT every file to its upload URL, confirm, wait (polling ``GET
/orders/{id}`` every 0.5 s), get the download URL, GET the result archive -- and writes every
output file, as the pipeline does. Every order starts at once, with as many requests in flight
as the pool has connections (a semaphore keeps the rest out of httpcore's pool queue, whose
bookkeeping grows with queued × connections; it is FIFO, so the first orders finish uploading
first and MORI works on them while the others upload). Each order's archive is unpacked and its
files written in a worker thread, off the event loop. No ledger, no backoff (a request whose
connection broke is just sent again), no verification, no fsync: the least work a client can
do for the same job.

``python -m bench.baseline --api URL --key KEY [--output DIR] FILE...`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import time
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ORDER_SIZE = 100
POLL_SECONDS = 0.5


@dataclass
class BaselineResult:
    images: int
    orders: int
    seconds: float
    api_requests: int

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds


class _Client:
    """An ``httpx.AsyncClient`` with at most ``slots`` requests in flight."""

    def __init__(self, client: httpx.AsyncClient, slots: int) -> None:
        self.client, self.slots = client, asyncio.Semaphore(slots)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; sent again (up to twice) when the connection failed, e.g. the server
        closed an idle keep-alive connection just as it was reused. Every call here is
        idempotent (the creates and confirms carry an idempotency key)."""
        for attempt in range(3):
            try:
                async with self.slots:
                    return await self.client.request(method, url, **kwargs)
            except httpx.TransportError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)


async def _order(
    client: _Client,
    headers: dict[str, str],
    files: Sequence[Path],
    counts: list[int],
    output: Path | None,
) -> int:
    """One order, create to download and write; returns the number of files written (in the
    result archive, without ``output``)."""
    created = await client.post(
        "/api/v2/orders",
        json={"orderName": "baseline", "files": [{"fileName": p.name} for p in files]},
        headers={**headers, "X-Idempotency-Key": str(uuid.uuid4())},
    )
    created.raise_for_status()
    order = created.json()["data"]
    order_id = order["orderId"]

    async def put(url: str, path: Path) -> None:
        answer = await client.put(
            url, content=path.read_bytes(), headers={"Content-Type": "image/jpeg"}
        )
        answer.raise_for_status()

    await asyncio.gather(
        *(put(f["uploadUrl"], p) for f, p in zip(order["files"], files, strict=True))
    )
    confirmed = await client.post(
        "/api/v2/orders/confirm",
        json={"orderId": order_id},
        headers={**headers, "X-Idempotency-Key": str(uuid.uuid4())},
    )
    confirmed.raise_for_status()
    counts[0] += 2
    while True:
        info = await client.get(f"/api/v2/orders/{order_id}", headers=headers)
        counts[0] += 1
        status = info.json()["data"]["status"]
        if status == "complete":
            break
        if status in ("failed", "expired"):
            raise RuntimeError(f"order {order_id} {status}")
        await asyncio.sleep(POLL_SECONDS)
    link = await client.get(f"/api/v2/orders/{order_id}/download", headers=headers)
    counts[0] += 1
    archive = await client.get(link.json()["data"]["downloadUrl"])
    archive.raise_for_status()
    return await asyncio.to_thread(_unpack, archive.content, output)


def _unpack(archive: bytes, output: Path | None) -> int:
    """Write every file of a result archive into ``output`` (by its base name); how many."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        names = [n for n in zf.namelist() if not n.endswith("/")]
        if output is not None:
            for name in names:
                (output / Path(name).name).write_bytes(zf.read(name))
        return len(names)


#: Connections of the baseline's pool: 20 beat 100 here (httpcore scans every connection for
#: every idle one on each request, so a big pool costs CPU: 11 vs 2-4 ms per image).
CONNECTIONS = 20


async def run_async(
    api: str,
    key: str,
    files: Sequence[Path],
    connections: int = CONNECTIONS,
    output: Path | None = None,
) -> BaselineResult:
    """Send ``files`` through MORI in orders of 100, all at once, and write the outputs into
    ``output`` (made if missing); time it end to end."""
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {key}"}
    chunks = [files[i : i + ORDER_SIZE] for i in range(0, len(files), ORDER_SIZE)]
    counts = [0]
    async with httpx.AsyncClient(base_url=api, limits=limits, timeout=120) as http:
        client = _Client(http, connections)
        started = time.perf_counter()
        done = await asyncio.gather(*(_order(client, headers, c, counts, output) for c in chunks))
        seconds = time.perf_counter() - started
    if sum(done) != len(files):
        raise RuntimeError(f"baseline got {sum(done)} results for {len(files)} files")
    return BaselineResult(len(files), len(chunks), seconds, counts[0])


def run(
    api: str,
    key: str,
    files: Sequence[Path],
    connections: int = CONNECTIONS,
    output: Path | None = None,
) -> BaselineResult:
    """:func:`run_async` from synchronous code."""
    return asyncio.run(run_async(api, key, files, connections, output))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--output", type=Path, help="write the outputs here")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    result = run(args.api, args.key, args.files, output=args.output)
    print(f"{result.images} images in {result.seconds:.2f} s: {result.images_per_second:.1f}/s")


if __name__ == "__main__":
    main()
