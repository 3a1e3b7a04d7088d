"""userservice: a small users API."""

__version__ = "0.1.0"
