"""alignlab: post-training pipeline with instruments that measure each stage."""
__version__ = "0.1.0"
