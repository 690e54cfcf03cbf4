"""The MORI emulator and a local S3 endpoint in processes of their own, for the benchmarks.

``python -m bench._server --rpm 300 --processing-seconds 0`` starts a local S3 endpoint (moto) in
a child process, the emulator on top of it, prints one JSON line (``{"api": ..., "s3": ...}``) and
serves until its standard input closes. Keeping them out of the measured process keeps their CPU
out of its figures and lets the client (pipeline or baseline) have its own interpreter lock, as
it would against the real MORI; giving moto its own process too lets the emulator's request
handling and S3's use both CPUs instead of sharing one interpreter lock.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time

API_KEYS = ("bench-pipeline", "bench-baseline")


def serve_s3(port: int) -> None:
    """Run moto's S3 server on ``port`` until stdin closes."""
    from mori.emulator.s3server import LocalS3

    with LocalS3(port=port):
        print("ready", flush=True)
        sys.stdin.read()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rpm", type=int, default=None)
    parser.add_argument("--processing-seconds", type=float, default=0.0)
    parser.add_argument("--processing-workers", type=int, default=4)
    parser.add_argument("--processing-mode", choices=["filter", "copy"], default="filter")
    parser.add_argument("--url-host", action="append", default=[])
    parser.add_argument("--s3-only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.s3_only:
        serve_s3(args.s3_only)
        return

    from mori.emulator.config import EmulatorConfig
    from mori.emulator.server import EmulatorServer

    port = free_port()
    s3 = subprocess.Popen(
        [sys.executable, "-m", "bench._server", "--s3-only", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert s3.stdout is not None
        if s3.stdout.readline().strip() != "ready":
            raise RuntimeError("the S3 process did not start")
        endpoint = f"http://127.0.0.1:{port}"
        config = EmulatorConfig(
            api_keys=frozenset(API_KEYS),
            rpm=args.rpm,
            processing_seconds=args.processing_seconds,
            processing_workers=args.processing_workers,
            processing_mode=args.processing_mode,
            url_allowlist=frozenset(args.url_host),
            s3_endpoint_url=endpoint,
            first_order_id=int(time.time() * 1000),
        )
        with EmulatorServer(config) as emulator:
            print(json.dumps({"api": emulator.url, "s3": endpoint}), flush=True)
            sys.stdin.read()  # serve until the parent closes our stdin (or exits)
    finally:
        assert s3.stdin is not None
        s3.stdin.close()
        try:
            s3.wait(30)
        except subprocess.TimeoutExpired:
            s3.kill()


if __name__ == "__main__":
    main()
