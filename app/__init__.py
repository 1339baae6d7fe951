"""Lineproof: trust machine-learning models on the production line."""

from app._offline import quiet_runtimes

__version__ = "0.1.0"

quiet_runtimes()
