"""Report scale: the audit report over 1M, 3M and 10M ``images`` rows.

``python -m bench.report`` writes (once, into ``bench/.cache``) a synthetic audit per size
(``bench/_audit.py``: runs of 10k-90k rows over about one day per three runs, most rows processed,
some skipped, some failed with a spread of error codes, a few pending, manifest columns, older
partitions), then measures the whole report (``make_report``: find and read the files, compute,
write the Parquet, CSVs, charts and page to a fresh folder), each run in a fresh child process:
wall and CPU seconds per phase (``load_audit``, ``build_report``, ``write_report``) and the
child's peak resident memory. The child also prints the report's totals and a digest of its
summary (floats to 1e-9), failure counts and ``failed_rows.csv``, so that ``--against`` shows
whether two implementations wrote the same report.

Target for 10M rows: <= 60 s and <= 1 GiB on 2 CPUs. ``--against DIR`` also measures the ``mori``
package in DIR (e.g. ``git archive <commit> | tar -x -C DIR``) on the same audits, run for run
in turn with this one, for sizes up to ``--against-rows``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._util import CACHE, emit_json, machine, median, table

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS, TARGET_MIB = 60.0, 1024.0
SIZES = (1_000_000, 3_000_000, 10_000_000)
FIGURES = ("images", "processed", "failed", "pending", "latency_p50_seconds", "latency_p95_seconds")


def audit(rows: int) -> Path:
    """The cached synthetic audit of ``rows`` image rows (written the first time)."""
    from bench._audit import write_audit

    return write_audit(CACHE / f"report-audit-{rows}", rows)


# -- the measured child ------------------------------------------------------------------------


def child(audit_uri: str, out: str) -> dict[str, Any]:
    """Load, build and write the report of ``audit_uri`` into ``out``; figures as a dict."""
    import resource

    def clock() -> tuple[float, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), usage.ru_utime + usage.ru_stime

    w0, _ = clock()
    from mori.report import build_report, load_audit, write_report

    w1, c1 = clock()
    data = load_audit(audit_uri)
    w2, _ = clock()
    report = build_report(data)
    w3, _ = clock()
    files = write_report(report, out)
    w4, c4 = clock()
    # every count, code, date and time exactly, every figure in seconds to 1e-9 s, and the
    # failed rows' CSV byte for byte
    summary = report.summary.copy()
    for column in summary.columns[summary.dtypes == "float64"]:
        summary[column] = summary[column].round(9)
    digest = hashlib.sha256(summary.to_csv(index=False).encode())
    digest.update(report.failures.to_csv(index=False).encode())
    digest.update((Path(files.out_uri) / "failed_rows.csv").read_bytes())
    totals = report.totals()
    return {
        "import_s": w1 - w0,
        "load_s": w2 - w1,
        "build_s": w3 - w2,
        "write_s": w4 - w3,
        "total_s": w4 - w1,
        "cpu_s": c4 - c1,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "files": report.files,
        "problems": len(report.problems),
        **{k: totals[k] for k in FIGURES},
        "outputs_sha256": digest.hexdigest(),
    }


def measure(audit_path: Path, code: str | None) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter (so that its peak memory is its own)."""
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        command = [sys.executable, "-m", "bench.report", "--child", str(audit_path), scratch]
        if code:  # the child imports ``mori`` from DIR; ``bench`` still comes from this checkout
            command += ["--code", str(Path(code).resolve())]
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the measured child failed:\n{out.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows",
        default=",".join(str(n) for n in SIZES),
        help="comma-separated audit sizes in images rows (default 1M, 3M, 10M)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per case (median)")
    parser.add_argument("--quick", action="store_true", help="one audit of 200k rows, one run")
    parser.add_argument("--code", help="measure the mori package in this folder instead")
    parser.add_argument(
        "--against",
        metavar="DIR",
        help="also measure the mori package in DIR, run for run in turn with this one",
    )
    parser.add_argument(
        "--against-rows",
        type=int,
        default=3_000_000,
        help="largest audit measured with --against (default 3M: an in-memory report needs "
        "several GiB per million rows)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.code:  # before anything imports mori (bench._util does not)
            sys.path.insert(0, args.code)
        print(json.dumps(child(*args.child)))
        return
    sizes = [200_000] if args.quick else [int(n) for n in args.rows.split(",")]
    repeats = 1 if args.quick else args.repeats
    print(f"report: audits of {', '.join(f'{n:,}' for n in sizes)} images rows; {machine()}")
    results: dict[str, list[dict[str, Any]]] = {}
    others: dict[str, list[dict[str, Any]]] = {}
    for rows in sizes:
        started = time.perf_counter()
        path = audit(rows)
        files = sum(1 for _ in path.rglob("*.parquet"))
        size = sum(p.stat().st_size for p in path.rglob("*.parquet")) / 2**20
        name = f"{rows:,} rows"
        ready = time.perf_counter() - started
        print(f"  {name}: {files:,} files, {size:,.0f} MiB (ready in {ready:.0f} s)", flush=True)
        results[name], others[name] = [], []
        for _ in range(repeats):  # in turn, so that both see the same machine
            results[name].append(measure(path, args.code))
            if args.against and rows <= args.against_rows:
                others[name].append(measure(path, args.against))
    others = {name: runs for name, runs in others.items() if runs}
    show(results)
    if others:
        print(f"\nthe same audits with the mori package in {args.against}:")
        show(others)
        print("\nthis / other, medians of the run-by-run ratios:")
        for name, theirs in others.items():
            pairs = list(zip(results[name], theirs, strict=True))
            time_ratio = median([a["total_s"] / b["total_s"] for a, b in pairs])
            peak_ratio = median([a["peak_mib"] / b["peak_mib"] for a, b in pairs])
            same = all(a["outputs_sha256"] == b["outputs_sha256"] for a, b in pairs)
            print(
                f"  {name}: time × {time_ratio:.3f}, peak memory × {peak_ratio:.3f}; "
                f"summary, failures and failed rows {'identical' if same else 'DIFFER'}"
            )
    payload: dict[str, Any] = {"machine": machine(), **results}
    if others:
        payload["against"] = {"code": args.against, **others}
    emit_json(args.json, payload)


def show(results: dict[str, list[dict[str, Any]]]) -> None:
    """The medians per case, and whether the largest case met the target."""
    rows = []
    for name, runs in results.items():
        m = {k: median([r[k] for r in runs]) for k in runs[0] if k != "outputs_sha256"}
        walls = ", ".join(f"{r['total_s']:.1f}" for r in runs)
        rows.append(
            [name, int(m["files"]), m["load_s"], m["build_s"], m["write_s"], m["total_s"],
             m["cpu_s"], m["peak_mib"], int(m["failed"]), m["latency_p95_seconds"], walls]
        )  # fmt: skip
    header = ["case", "files", "load s", "build s", "write s", "total s", "CPU s", "peak MiB",
              "failed rows", "p95 s", "runs (total s)"]  # fmt: skip
    print()
    print(table(rows, header))
    for name, runs in results.items():
        if runs and runs[0]["images"] >= 10_000_000:
            wall = median([r["total_s"] for r in runs])
            peak = median([r["peak_mib"] for r in runs])
            met = wall <= TARGET_SECONDS and peak <= TARGET_MIB
            print(
                f"\n{name}: {wall:.1f} s, {peak:,.0f} MiB peak (target ≤ {TARGET_SECONDS:.0f} s, "
                f"≤ {TARGET_MIB:,.0f} MiB: {'met' if met else 'NOT met'})"
            )
    print("load = find files, read footers (and, in-memory code, every row); build = compute")
    print("write = Parquet, CSVs, charts, page; peak = the child's peak RSS, imports included")


if __name__ == "__main__":
    main()
