"""Manifest scale: plan 1M, 3M and 10M URL rows in bounded memory, on SQLite and PostgreSQL.

``python -m bench.manifest`` writes (once, into ``bench/.cache``) CSV manifests of public URL
rows (``source,id``; about 0.3 % of them bad, duplicated or unusual, so the row-wise path is
exercised too) and, with ``--file-rows``, small local JPEGs with their manifest. Then, for each
row count and each ledger backend (PostgreSQL: a server of its own, from the embedded binaries
the tests use), each stage in a fresh child process (so its peak memory is its own):

* ``plan``: ``mori-pipeline plan``'s dry run on an empty ledger (read, validate, key, look up,
  count; nothing recorded);
* ``protect``: ``protect``'s planning stage, everything a run does before it creates an order
  and after: rows read and keyed, looked up, the plan estimated, every window's intent recorded,
  every row's audit row written and published (the orders are not driven: their rows are
  ``pending``);
* ``rerun``: the same manifest again once every image is processed (marked so in the ledger, as
  a finished run leaves it): every row is found and ``skipped``, its audit row written;

with the child's wall and CPU seconds and peak resident memory, and the ledger's bytes on disk
per image (SQLite: the file; PostgreSQL: ``pg_total_relation_size`` of its tables).

Targets: 10M rows ≤ 150 s and ≤ 1 GiB for ``plan`` and ``protect``, ≤ 60 s for ``rerun``, on
2 CPUs. ``--against DIR`` measures the ``mori`` package in DIR too (e.g. ``git archive <commit> |
tar -x -C DIR``), run for run in turn with this one, on the row counts up to ``--against-rows``;
code without :mod:`mori.batch.stream` does the same stages with its own ``load`` and plan.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._util import CACHE, machine, median, table, write_csv, write_images

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS, RERUN_SECONDS, TARGET_MIB = 150.0, 60.0, 1024.0
EXTENSIONS = ["jpg"] * 12 + ["png"] * 4 + ["webp"] * 2 + ["jpeg", "JPG", "tiff", "bmp"]
STAGES = ("plan", "protect", "rerun")


def url_rows(n: int, seed: int = 11) -> Iterator[tuple[str, str]]:
    """``n`` rows of ``(source, id)``: mostly plain CDN URLs, a few bad or unusual ones.

    Each row is a function of its number (a hash of it decides the unusual ones), so the rows
    stream and a duplicate names an earlier row without holding it.
    """
    for i in range(n):
        yield _url(i, seed), f"u{i}"


def _url(i: int, seed: int) -> str:
    """Row ``i``'s source (see :func:`url_rows`)."""
    mix = int.from_bytes(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest(), "big")
    roll = (mix & 0xFFFFF) / 0x100000
    if roll < 0.001 and i:
        return _url((mix >> 32) % i, seed)  # DUPLICATE_ROW
    host = f"cdn{i % 50}.example.com" if i % 3 else f"images.shop-{i % 997}.com"
    ext = EXTENSIONS[i % len(EXTENSIONS)]
    url = f"https://{host}/photos/{2010 + i % 15}/{(i * 7919) % 1000:03d}/{i:07d}-p.{ext}"
    if i % 4 == 0:
        url += f"?w={(800, 1200, 2400)[(mix >> 20) % 3]}&q=80"
    if roll < 0.0015:
        url = f"http://10.0.{i % 256}.{i % 200}/{i}.jpg"  # URL_PRIVATE_ADDRESS
    elif roll < 0.002:
        url = url.rsplit(".", 1)[0] + ".gif"  # UNSUPPORTED_FORMAT
    elif roll < 0.0025:
        url = url.replace("https://", "HTTPS://").replace(".com/", ".COM:443/")  # row-wise
    elif roll < 0.003:
        url = url.replace("-p.", "%20p.")  # a %-escape: row-wise, still valid
    return url


def url_manifest(n: int, extra_columns: int = 0) -> Path:
    """``n`` URL rows; with ``extra_columns`` more columns for the audit (``c1``, ``c2``, ...)."""
    suffix = f"-x{extra_columns}" if extra_columns else ""
    path = CACHE / f"manifest-urls-{n}{suffix}.csv"
    if not path.exists():
        extras = [f"c{k}" for k in range(1, extra_columns + 1)]
        rows = ((*row, *(f"{c}-{i % 5000}" for c in extras)) for i, row in enumerate(url_rows(n)))
        partial = path.with_suffix(".partial")
        write_csv(partial, ["source", "id", *extras], rows)
        partial.rename(path)
    return path


def file_manifest(n: int) -> Path:
    folder = CACHE / "files-96x72"
    paths = write_images(folder / "images", n, size=(96, 72), noise=0.15, bases=32)
    path = folder / f"manifest-{n}.csv"
    if not path.exists():
        rows = ((str(p.relative_to(folder)), f"f{i}") for i, p in enumerate(paths))
        write_csv(path, ["source", "id"], rows)
    return path


# -- the measured child ------------------------------------------------------------------------


def child(stage: str, manifest: str, ledger: str, work: str) -> dict[str, Any]:
    """Run one stage (see the module docstring); its figures (this runs in a child process)."""
    import resource
    import time

    def clock() -> tuple[float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), usage.ru_utime + usage.ru_stime

    from bench import _stages

    w0, c0 = clock()
    figures = _stages.run(stage, manifest, ledger, Path(work))
    w1, c1 = clock()
    figures.update(
        wall_s=w1 - w0,
        cpu_s=c1 - c0,
        peak_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    return figures


def measure(stage: str, manifest: Path, ledger: str, code: str | None) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter (its peak memory is its own)."""
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        command = [sys.executable, "-m", "bench.manifest", "--child", stage, str(manifest)]
        command += ["--ledger", ledger, "--work", work]
        if code:  # the child imports ``mori`` from DIR; ``bench`` still comes from this checkout
            command += ["--code", str(Path(code).resolve())]
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the measured child ({stage}) failed:\n{out.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


# -- the cases ---------------------------------------------------------------------------------


@contextlib.contextmanager
def ledgers(backends: list[str]) -> Iterator[Any]:
    """A function giving a fresh ledger target per call, by backend (PostgreSQL: a server of
    this benchmark's own, or ``MORI_TEST_DATABASE_URL``'s)."""
    server = None
    with contextlib.ExitStack() as stack:
        if "postgresql" in backends:
            server = stack.enter_context(_postgres())
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=CACHE)))
        count = iter(range(10**6))

        def fresh(backend: str) -> str:
            if backend == "sqlite":
                return str(scratch / f"ledger-{next(count)}.sqlite")
            assert server is not None
            return str(server.database_url(server.create_database()))

        yield fresh


@contextlib.contextmanager
def _postgres() -> Iterator[Any]:
    """A PostgreSQL server (as the tests start one), stopped at the end."""
    from tests.support.postgres import EmbeddedPostgres, PostgresServer

    if url := os.environ.get("MORI_TEST_DATABASE_URL"):
        yield PostgresServer(url)
        return
    embedded = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="mori-pg-")))  # its user needs it
    try:
        embedded.start()
        yield PostgresServer(embedded.url, embedded)
    finally:
        embedded.stop()


def run_case(
    manifest: Path, ledger: str, code: str | None, stages: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """The stages on one manifest and one fresh ledger, in order (the rerun after the first
    run, every image then marked processed)."""
    from bench import _stages

    figures: dict[str, dict[str, Any]] = {}
    for stage in stages:
        if stage == "rerun":
            figures["ledger"] = _stages.ledger_size(ledger)
            _stages.mark_processed(ledger)
            figures["ledger_done"] = _stages.ledger_size(ledger)
        figures[stage] = measure(stage, manifest, ledger, code)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000000,3000000,10000000", help="URL rows per case")
    parser.add_argument("--backends", default="sqlite,postgresql", help="ledger backends")
    parser.add_argument("--file-rows", type=int, default=0, help="a local-file case (SQLite)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per case (median)")
    parser.add_argument("--extra-columns", type=int, default=0, help="more manifest columns")
    parser.add_argument("--quick", action="store_true", help="100k and 300k URL rows, 1 run")
    parser.add_argument("--code", help="measure the mori package in this folder instead")
    parser.add_argument(
        "--against",
        metavar="DIR",
        help="also measure the mori package in DIR, run for run in turn with this one, and "
        "print the ratios (e.g. a `git archive` of an older commit)",
    )
    parser.add_argument("--against-rows", type=int, default=1_000_000, help="up to this many")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", nargs=2, metavar=("STAGE", "MANIFEST"), help=argparse.SUPPRESS)
    parser.add_argument("--ledger", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.code:  # before anything imports mori (bench._util does not)
            sys.path.insert(0, args.code)
        print(json.dumps(child(*args.child, args.ledger, args.work)))
        return
    if args.quick:
        args.rows, args.file_rows, args.repeats = "100000,300000", 10_000, 1
    counts = [int(n) for n in args.rows.split(",") if n]
    backends = [b for b in args.backends.split(",") if b]
    print(f"manifest: {', '.join(f'{n:,}' for n in counts)} URL rows; {machine()}", flush=True)
    cases = [(f"{n:,} URL rows", url_manifest(n, args.extra_columns), n) for n in counts]
    if args.file_rows:
        cases.append((f"{args.file_rows:,} local files", file_manifest(args.file_rows), 0))
    results: dict[str, list[dict[str, Any]]] = {}
    others: dict[str, list[dict[str, Any]]] = {}
    with ledgers(backends) as fresh:
        for name, manifest, rows in cases:
            for backend in backends if rows else ["sqlite"]:
                case = f"{name}, {backend}"
                size = manifest.stat().st_size / 2**20
                print(f"  {case}: {manifest.name} ({size:.0f} MiB)", flush=True)
                for _ in range(args.repeats):  # in turn, so that both see the same machine
                    figures = run_case(manifest, fresh(backend), args.code, STAGES)
                    results.setdefault(case, []).append(figures)
                    _progress(figures)
                    if args.against and rows <= args.against_rows:
                        figures = run_case(manifest, fresh(backend), args.against, STAGES)
                        others.setdefault(case, []).append(figures)
                        _progress(figures, args.against)
    report(results)
    if others:
        print(f"\nthe same cases with the mori package in {args.against}:")
        report(others)
        print("\nthis / other, medians of the run-by-run ratios:")
        for case in others:
            pairs = list(zip(results[case], others[case], strict=False))
            for stage in STAGES:
                times = median([a[stage]["wall_s"] / b[stage]["wall_s"] for a, b in pairs])
                peaks = median([a[stage]["peak_mib"] / b[stage]["peak_mib"] for a, b in pairs])
                print(f"  {case}, {stage}: time × {times:.3f}, peak memory × {peaks:.3f}")
    if args.json:
        payload: dict[str, Any] = {"machine": machine(), "cases": results}
        if others:
            payload["against"] = {"code": args.against, "cases": others}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


def _progress(figures: dict[str, Any], code: str | None = None) -> None:
    """One line per run of a case, as it ends."""
    shown = ", ".join(
        f"{stage} {figures[stage]['wall_s']:.1f} s ({figures[stage]['cpu_s']:.1f} s CPU)"
        f" {figures[stage]['peak_mib']:.0f} MiB"
        for stage in STAGES
    )
    ledger = f"; ledger {_per_image(figures['ledger']):.0f} B/image"
    ledger += f", {_per_image(figures['ledger_done']):.0f} processed"
    print(f"    {shown}{ledger}{f' ({code})' if code else ''}", flush=True)


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    """The medians per case and stage, the ledger per image, and the targets for 10M rows."""
    rows = []
    for case, runs in results.items():
        for stage in STAGES:
            m = {k: median([r[stage][k] for r in runs]) for k in ("wall_s", "cpu_s", "peak_mib")}
            found = runs[0][stage]
            rows.append(
                [case, stage, int(found["rows"]), int(found["orders"]), int(found["skipped"]),
                 m["wall_s"], m["cpu_s"], m["peak_mib"]]
            )  # fmt: skip
    header = ["case", "stage", "rows", "orders", "skipped", "wall s", "CPU s", "peak MiB"]
    print()
    print(table(rows, header))
    print("\nledger on disk: after the first run (intent), and every image processed:")
    sizes = [
        [case, runs[0]["ledger"]["images"], runs[0]["ledger"]["bytes"] / 2**20,
         _per_image(runs[0]["ledger"]), _per_image(runs[0]["ledger_done"])]
        for case, runs in results.items()
    ]  # fmt: skip
    print(table(sizes, ["case", "images", "MiB", "bytes per image", "processed"]))
    for case, runs in results.items():
        if not case.startswith("10,000,000 URL rows"):
            continue
        for stage in STAGES:
            wall = median([r[stage]["wall_s"] for r in runs])
            peak = median([r[stage]["peak_mib"] for r in runs])
            seconds = RERUN_SECONDS if stage == "rerun" else TARGET_SECONDS
            met = wall <= seconds and peak <= TARGET_MIB
            print(
                f"{case}, {stage}: {wall:.1f} s, {peak:.0f} MiB peak (target ≤ {seconds:.0f} s,"
                f" ≤ {TARGET_MIB:.0f} MiB: {'met' if met else 'NOT met'})"
            )
    print(
        "plan = dry run (read, validate, key, look up, count); protect = its planning stage,"
        " audit included; rerun = protect again, every image processed before"
    )


def _per_image(size: dict[str, int]) -> float:
    """Bytes on disk per image."""
    return size["bytes"] / max(size["images"], 1)


if __name__ == "__main__":
    main()
