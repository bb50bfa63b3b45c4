"""Siyu (私域): private-domain customer operations on WeCom."""

__version__ = "0.1.0"
