"""irbench: reproducible information-retrieval experiments."""

__version__ = "0.1.0"
