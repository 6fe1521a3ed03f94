"""One exception hierarchy: every error says what was wrong, where, and what to do."""


class RetrainerError(Exception):
    """Base class of every error retrainer raises on purpose."""


class ConfigError(RetrainerError):
    """The project file is invalid; ``problems`` lists one message per problem with its key path."""

    def __init__(self, problems: list[str], source: str = "retrainer.yaml"):
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid project file {source}:\n{lines}")


class DataError(RetrainerError):
    """A batch cannot be read or does not fit the schema (names the file, column or row)."""


class StoreError(RetrainerError):
    """The metadata store or the artifact folder refused an operation."""


class IntegrityError(StoreError):
    """An artifact does not match its recorded hash (corrupted, truncated or swapped)."""


class UnsafeArtifactError(StoreError):
    """An artifact is in a format that could run code when loaded (pickle and friends)."""


class BusyError(RetrainerError):
    """Another process holds the lease this work needs (e.g. a cycle of the same project)."""


class TrainingError(RetrainerError):
    """A trainer could not be imported, built or fitted."""


class ConflictError(RetrainerError):
    """What was sent contradicts what is stored under the same key (nothing is stored)."""


class NotFoundError(RetrainerError):
    """A named model version, alias, batch or run does not exist."""


class GateFailedError(RetrainerError):
    """A model version that failed its gate was to be promoted without ``force``."""
