"""Benchmarks: ``python -m benchmarks`` runs every ``bench_*.py`` module here (see __main__.py)."""
