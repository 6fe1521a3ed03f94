"""retrainer: continuous training for machine-learning models.

Example:
    >>> from retrainer import Project
    >>> Project.__name__
    'Project'
"""

from retrainer.version import __version__

__all__ = ["Project", "__version__"]


def __getattr__(name: str):
    if name == "Project":
        from retrainer.project import Project

        return Project
    raise AttributeError(name)
