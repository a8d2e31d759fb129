"""The package version, alone in a module so that any layer can read it without importing
the public API (which imports the engine)."""

__version__ = "0.1.0"
