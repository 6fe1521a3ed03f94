"""The package's version, recorded in every model version's lineage and the webhooks' agent.

Example:
    >>> from retrainer.version import __version__
    >>> __version__.count(".")
    2
"""

__version__ = "0.1.0"
