"""Sparse inverted indexes: build from doc vectors, save, load, search (see :mod:`.base`)."""

from irbench.index.base import INDEX_TYPES, index_class, load_index

__all__ = ["INDEX_TYPES", "index_class", "load_index"]
