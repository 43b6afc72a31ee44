"""Instruments: they take a model or run directory and return plain results; they never train."""
