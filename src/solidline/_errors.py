"""Every error solidline raises on purpose.

All of them derive from :class:`SolidlineError`; each also inherits the builtin it resembles, so
``except ValueError`` keeps working for callers who do not know solidline::

    SolidlineError
    ├── InvalidDate(ValueError)             an EDTF string that does not parse
    ├── InvalidEvent(ValueError)            an event or draft that breaks the model
    │   ├── InvalidEventDate(InvalidDate)   an event's date field that does not parse
    │   ├── UnknownEventType                a ``type`` no class is registered for
    │   └── UnknownTarget                   a correction, status change … naming no known event
    ├── LogError
    │   ├── CorruptLog(ValueError)          a line that is not what the log wrote
    │   │   └── ChainBroken                 a line whose ``prev`` hash or ``seq`` does not follow
    │   ├── ConflictingAppend(ValueError)   an existing id appended with other content
    │   ├── HeadMoved                       ``expected_head`` no longer matches the log
    │   ├── LogLocked(BlockingIOError)      another process holds the lock (non-blocking open)
    │   └── DurabilityError(OSError)        fsync failed: the append may not be on disk
    ├── ConfigError(ValueError)             ``solidline.toml`` is missing something or wrong
    ├── PublishError                        the output folder could not be written
    ├── SubscriberError(ValueError)         a subscriber file with a bad line
    └── DeliveryError                       a message the transport could not deliver

Messages say what was wrong, where (file, line, field) and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ChainBroken",
    "ConfigError",
    "ConflictingAppend",
    "CorruptLog",
    "DeliveryError",
    "DurabilityError",
    "HeadMoved",
    "InvalidDate",
    "InvalidEvent",
    "InvalidEventDate",
    "LogError",
    "LogLocked",
    "PublishError",
    "SolidlineError",
    "SubscriberError",
    "UnknownEventType",
    "UnknownTarget",
]


class SolidlineError(Exception):
    """Base class of every error solidline raises on purpose."""


class InvalidDate(SolidlineError, ValueError):
    """An EDTF date string that solidline cannot parse."""


class InvalidEvent(SolidlineError, ValueError):
    """An event (or a draft of one) that breaks the model.

    Attributes:
        field: dotted path of the offending field (``"sources[0].url"``), or ``None``.
        where: the place the event came from (``"drafts.jsonl, line 4"``), or ``None``.
    """

    def __init__(self, message: str, *, field: str | None = None, where: str | None = None):
        self.field = field
        self.where = where
        self.reason = message
        parts = [p for p in (where, f"field {field!r}" if field else None) if p]
        super().__init__(f"{': '.join(parts)}: {message}" if parts else message)


class InvalidEventDate(InvalidEvent, InvalidDate):
    """An event's date field (``when``, ``published``) that is not an EDTF date."""


class UnknownEventType(InvalidEvent):
    """A ``type`` for which no event class is registered."""


class UnknownTarget(InvalidEvent):
    """A status change, correction, retraction or same-as link naming an unknown event."""


class LogError(SolidlineError):
    """Something wrong with an event log (as opposed to one event)."""


class CorruptLog(LogError, ValueError):
    """A line in the log that is not what solidline wrote.

    Attributes:
        segment: the segment file (or backend name) holding the line.
        line: 1-based line number inside the segment.
        field: the JSON field at fault, if one is.
    """

    def __init__(
        self, message: str, *, segment: str, line: int, field: str | None = None
    ) -> None:
        self.segment = segment
        self.line = line
        self.field = field
        self.reason = message
        where = f"{segment}, line {line}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")


class ChainBroken(CorruptLog):
    """A line whose ``seq`` or ``prev`` hash does not follow the line before it."""


class ConflictingAppend(LogError, ValueError):
    """An id that is already in the log, appended again with other content."""


class HeadMoved(LogError):
    """``append(..., expected_head=n)`` when the log's head is no longer ``n``."""

    def __init__(self, expected: int, actual: int) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"the log moved on: expected head {expected}, found {actual}; "
            "read the new events and decide again"
        )


class LogLocked(LogError, BlockingIOError):
    """Another process holds the log's (or a command's) lock."""


class DurabilityError(LogError, OSError):
    """``fsync``/``fdatasync`` failed: what was written may not survive a crash."""


class ConfigError(SolidlineError, ValueError):
    """``solidline.toml`` is missing a setting or holds a wrong one."""


class PublishError(SolidlineError):
    """The output of ``publish`` could not be written; the previous output is left as it was."""


class SubscriberError(SolidlineError, ValueError):
    """A subscriber file with a bad line; nothing is sent until it is fixed."""


class DeliveryError(SolidlineError):
    """A message the transport could not deliver."""
