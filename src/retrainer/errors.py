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


def describe(exc: BaseException) -> str:
    """An error in one line: its own message without SQL statements and links, and the root
    cause it was raised from when the message does not already say it. A ``ConfigError`` keeps
    its one line per problem.

    Example:
        >>> try:
        ...     try:
        ...         raise OSError(28, "No space left on device", "/data/store.db")
        ...     except OSError as exc:
        ...         raise StoreError("cannot write artifact ab12:\\n[SQL: INSERT ...]") from exc
        ... except StoreError as exc:
        ...     print(describe(exc))
        cannot write artifact ab12: (OSError: [Errno 28] No space left on device: '/data/store.db')
    """
    text = _clean(exc)
    root, seen = exc, {id(exc)}
    while True:
        nxt = root.__cause__ or (None if root.__suppress_context__ else root.__context__)
        if nxt is None or id(nxt) in seen:
            break
        root = nxt
        seen.add(id(root))
    if root is not exc:
        cause = _clean(root)
        if cause and cause.partition(": ")[2] not in text:
            text = f"{text} ({cause})"
    return text


def _clean(exc: BaseException) -> str:
    noise = ("[SQL:", "[parameters:", "(Background on this error")
    lines = []
    for line in str(exc).splitlines():
        if line.strip().startswith(noise):
            break
        lines.append(line.rstrip())
    text = ("\n" if isinstance(exc, ConfigError) else " ").join(x for x in lines if x.strip())
    if not isinstance(exc, RetrainerError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text.strip()
