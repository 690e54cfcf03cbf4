"""Benchmarks of mori-pipeline: one command each, figures printed, see ``BENCHMARKS.md``.

``python -m bench.throughput``, ``python -m bench.ratelimit``, ``python -m bench.manifest`` and
``python -m bench.overhead`` (each takes ``--quick`` and ``--help``). They need only the project's
virtualenv (``make install``): the MORI emulator and a local S3 endpoint run in a child process.
"""
