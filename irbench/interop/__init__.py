"""Bridges to other IR toolkits. Each submodule imports its toolkit itself, so importing
``irbench`` never pulls them in: ``from irbench.interop.pyterrier import IrbenchRetriever``."""
