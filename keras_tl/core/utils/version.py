"""The package's version, written in this one place (pyproject.toml reads it; exports record it)."""

__version__ = "0.2.0"
