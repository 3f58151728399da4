"""The package version (read by the build backend; `reporter.__version__` re-exports it)."""

__version__ = "0.1.0"
