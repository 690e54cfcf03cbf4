"""Manifest scale: validate, key and plan 1,000,000 URL rows and 100,000 local-file rows.

``python -m bench.manifest`` writes (once, into ``bench/.cache``) a CSV of 1,000,000 public URL
rows (``source,id``; about 0.3 % of them bad, duplicated or unusual, so the row-wise path is
exercised too) and 100,000 small local JPEGs with their manifest, then measures, each case in a
fresh child process:

* ``load``: read the CSV, validate every row, fingerprint (URLs: normalised address; files:
  SHA-256 of the bytes after a full decode), derive the uuid5 image keys, flag duplicates;
* ``plan``: look every key up in a new ledger, chunk the new images into orders of 100 and
  record the intent of all orders (one SQLite transaction);
* the child's wall and CPU seconds for both, and its peak resident memory.

Target for 1M URL rows: ≤ 15 s and ≤ 1 GiB on 2 CPUs. ``--code DIR`` measures the ``mori``
package in DIR instead (e.g. ``git archive <commit> | tar -x -C DIR`` for a before/after).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from bench._util import CACHE, machine, median, table, write_csv, write_images

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS, TARGET_MIB = 15.0, 1024.0
EXTENSIONS = ["jpg"] * 12 + ["png"] * 4 + ["webp"] * 2 + ["jpeg", "JPG", "tiff", "bmp"]


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
    path = CACHE / (
        f"manifest-urls-{n}.csv" if not extra_columns else f"manifest-urls-{n}-x{extra_columns}.csv"
    )
    if not path.exists():
        extras = [f"c{k}" for k in range(1, extra_columns + 1)]
        rows = ((*row, *(f"{c}-{i % 5000}" for c in extras)) for i, row in enumerate(url_rows(n)))
        write_csv(path, ["source", "id", *extras], rows)
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


def child(manifest: str) -> dict[str, Any]:
    """Load and plan ``manifest`` into a fresh ledger; figures as a dict (runs in a child)."""
    import resource

    from mori.batch import plan
    from mori.batch.ledger import Ledger
    from mori.batch.manifest import load
    from mori.batch.storage import Storage

    def clock() -> tuple[float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), usage.ru_utime + usage.ru_stime

    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        w0, c0 = clock()
        items = load(manifest, Storage())
        w1, _ = clock()
        ledger = Ledger(Path(scratch) / "ledger.sqlite")
        if hasattr(plan, "plan_and_record"):  # as the plan-orders task does it
            _, orders = plan.plan_and_record(items, ledger)
        else:  # older code (--code): the same steps, under the write lock where there is one
            with getattr(ledger, "exclusive", contextlib.nullcontext)():
                orders = plan.plan_orders(plan.triage(items, ledger).new)
                plan.record_intent(orders, items, ledger)
        w2, c2 = clock()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        figures = {
            "rows": len(items),
            "valid": sum(it.error_code is None for it in items),
            "orders": len(orders),
            "load_s": w1 - w0,
            "plan_s": w2 - w1,
            "total_s": w2 - w0,
            "cpu_s": c2 - c0,
            "peak_mib": peak,
            "ledger_mib": sum(p.stat().st_size for p in Path(scratch).iterdir()) / 2**20,
        }
        # A rerun of the same manifest: every key is found in the ledger, nothing is planned.
        w3, _ = clock()
        if hasattr(plan, "plan_and_record"):
            again, nothing = plan.plan_and_record(items, ledger)
            assert not nothing, "a rerun planned new orders"
        else:
            again = plan.triage(items, ledger)
        figures["rerun_lookup_s"] = clock()[0] - w3
        figures["rerun_known"] = len(again.known)
        ledger.close()
    return figures


def measure(manifest: Path, code: str | None) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter (so its peak memory is its own)."""
    command = [sys.executable, "-m", "bench.manifest", "--child", str(manifest)]
    if code:  # the child imports ``mori`` from DIR; ``bench`` still comes from this checkout
        command += ["--code", str(Path(code).resolve())]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the measured child failed:\n{out.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="URL rows (default 1M)")
    parser.add_argument("--file-rows", type=int, default=100_000, help="local-file rows")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (median)")
    parser.add_argument(
        "--extra-columns", type=int, default=0, help="more manifest columns in the URL case"
    )
    parser.add_argument("--quick", action="store_true", help="100k URL rows, 10k files, 1 run")
    parser.add_argument("--code", help="measure the mori package in this folder instead")
    parser.add_argument(
        "--against",
        metavar="DIR",
        help="also measure the mori package in DIR, run for run in turn with this one, and "
        "print the ratios (e.g. a `git archive` of an older commit)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.code:  # before anything imports mori (bench._util does not)
            sys.path.insert(0, args.code)
        print(json.dumps(child(args.child)))
        return
    if args.quick:
        args.rows, args.file_rows, args.repeats = 100_000, 10_000, 1
    print(f"manifest: {args.rows:,} URL rows, {args.file_rows:,} local-file rows; {machine()}")
    cases = []
    if args.rows:
        name = f"{args.rows:,} URL rows"
        if args.extra_columns:
            name += f" + {args.extra_columns} column{'s' * (args.extra_columns > 1)}"
        cases.append((name, url_manifest(args.rows, args.extra_columns), args.repeats))
    if args.file_rows:
        cases.append((f"{args.file_rows:,} local files", file_manifest(args.file_rows), 1))
    results: dict[str, list[dict[str, Any]]] = {}
    others: dict[str, list[dict[str, Any]]] = {}
    for name, manifest, repeats in cases:
        size = manifest.stat().st_size / 2**20
        print(f"  {name}: {manifest.name} ({size:.0f} MiB), {repeats} run(s)", flush=True)
        results[name], others[name] = [], []
        for _ in range(repeats):  # in turn, so that both see the same machine
            results[name].append(measure(manifest, args.code))
            if args.against:
                others[name].append(measure(manifest, args.against))
    report(args, results)
    if args.against:
        print(f"\nthe same cases with the mori package in {args.against}:")
        report(args, others)
        print("\nthis / other, medians of the run-by-run ratios:")
        for name in results:
            pairs = list(zip(results[name], others[name], strict=True))
            time_ratio = median([a["total_s"] / b["total_s"] for a, b in pairs])
            peak_ratio = median([a["peak_mib"] / b["peak_mib"] for a, b in pairs])
            print(f"  {name}: time × {time_ratio:.3f}, peak memory × {peak_ratio:.3f}")
    if args.json:
        payload = {"machine": machine(), **results}
        if args.against:
            payload["against"] = {"code": args.against, **others}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


def report(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]]) -> None:
    rows = []
    for name, runs in results.items():
        m = {k: median([r[k] for r in runs]) for k in runs[0]}
        rows.append(
            [name, int(m["valid"]), int(m["orders"]), m["load_s"], m["plan_s"], m["total_s"],
             m["cpu_s"], m["peak_mib"], m["ledger_mib"], m["rerun_lookup_s"]]
        )  # fmt: skip
    header = ["case", "valid", "orders", "load s", "plan s", "total s", "CPU s", "peak MiB",
              "ledger MiB", "rerun lookup s"]  # fmt: skip
    print()
    print(table(rows, header))
    if args.rows == 1_000_000:
        name, runs = next(iter(results.items()))
        m = {k: median([r[k] for r in runs]) for k in ("total_s", "peak_mib")}
        met = m["total_s"] <= TARGET_SECONDS and m["peak_mib"] <= TARGET_MIB
        print(
            f"\n{name}: {m['total_s']:.1f} s, {m['peak_mib']:.0f} MiB peak "
            f"(target ≤ {TARGET_SECONDS:.0f} s, ≤ {TARGET_MIB:.0f} MiB: "
            f"{'met' if met else 'NOT met'})"
        )
    print("load = read + validate + fingerprint + key; plan = ledger lookup + orders + intent")


if __name__ == "__main__":
    main()
