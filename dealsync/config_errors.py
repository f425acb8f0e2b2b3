"""The error every configuration problem raises."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration problem: names the file, the key, and what to do."""
