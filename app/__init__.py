"""Broadsheet: self-hosted email newsletter delivery."""

__version__ = "0.1.0"
