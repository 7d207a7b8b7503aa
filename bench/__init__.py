"""Benchmarks: run with bench/run (see README)."""
