"""Benchmarks: measure, never assert. Results go to docs/benchmarks.md."""
