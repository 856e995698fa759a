"""Measurement tools, run from the repository root as `python -m benchmarks.<tool>` (index: README.md)."""
