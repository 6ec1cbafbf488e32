"""geo311 benchmarks: ``python -m bench [--only NAME ...]`` from the repository root.

Every benchmark runs against its own database (``geo311_bench``, created and migrated on first
use; the development database is never touched), reads the shared city data from
``../shared/data`` relative to the repository root, and writes ``bench/results/<name>.json``.
``bench/results/SUMMARY.md`` is rewritten from every results file after each run.
"""
