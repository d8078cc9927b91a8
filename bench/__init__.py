"""Performance benchmarks (``make bench``).

Each ``bench/bench_<topic>.py`` module exposes ``run() -> dict`` returning its figures (ratios
measured in the same run, never absolute targets alone). ``python -m bench`` runs them all,
prints a table and writes ``out/bench/<topic>.json``. ``python -m bench sfr emva`` runs a subset.
"""
