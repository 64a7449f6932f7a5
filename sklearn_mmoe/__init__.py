"""scikit-learn estimators for multi-task learning (placeholder during bootstrap)."""

from ._version import __version__

__all__ = ["__version__"]
