"""Lineproof: trust machine-learning models on the production line."""

__version__ = "0.1.0"
