"""retrainer: continuous training for machine-learning models.

Example:
    >>> from retrainer import Project
    >>> Project.__name__
    'Project'
"""

__version__ = "0.1.0"

__all__ = ["Project"]


def __getattr__(name: str):
    if name == "Project":
        from retrainer.project import Project

        return Project
    raise AttributeError(name)
