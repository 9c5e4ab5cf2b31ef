"""cchsweep: Ray Tune sweeps, DuckDB results, and the Cross-modal Complementarity Hypothesis."""

__version__ = "0.1.0"
