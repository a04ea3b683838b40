"""The SDK version (pyproject.toml reads it from here)."""

__version__ = "1.0.0"
