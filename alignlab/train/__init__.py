"""Training stages, each an explicit loop over the shared mechanics in loop.py."""
