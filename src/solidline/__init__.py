"""solidline: an immutable record of events between organisations and states.

Record events in an append-only, hash-chained log; read them back as typed objects; fold them
into timelines per relationship and entity; publish feeds and mail digests.
"""

from __future__ import annotations

from ._errors import (
    ChainBroken,
    ConfigError,
    ConflictingAppend,
    CorruptLog,
    DeliveryError,
    DurabilityError,
    HeadMoved,
    InvalidDate,
    InvalidEvent,
    LogError,
    LogLocked,
    PublishError,
    SolidlineError,
    SubscriberError,
    UnknownEventType,
    UnknownTarget,
)
from .codec import Recorded, event_from_draft, event_to_draft, event_type, registered_types
from .dates import EDTFDate, Precision, parse_date
from .log import EventLog, Head, JsonlLog, MemoryLog, VerifyReport, open_log
from .model import (
    AgreementSigned,
    Amendment,
    Congress,
    Corrected,
    Donation,
    EntityDefined,
    Event,
    Fact,
    Meeting,
    Participant,
    Period,
    Person,
    RelationsEstablished,
    Retracted,
    SameAs,
    Source,
    Statement,
    StatusChanged,
    Visit,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "AgreementSigned",
    "Amendment",
    "ChainBroken",
    "ConfigError",
    "ConflictingAppend",
    "Congress",
    "Corrected",
    "CorruptLog",
    "DeliveryError",
    "Donation",
    "DurabilityError",
    "EDTFDate",
    "EntityDefined",
    "Event",
    "EventLog",
    "Fact",
    "Head",
    "HeadMoved",
    "InvalidDate",
    "InvalidEvent",
    "JsonlLog",
    "LogError",
    "LogLocked",
    "Meeting",
    "MemoryLog",
    "Participant",
    "Period",
    "Person",
    "Precision",
    "PublishError",
    "Recorded",
    "RelationsEstablished",
    "Retracted",
    "SameAs",
    "SolidlineError",
    "Source",
    "Statement",
    "StatusChanged",
    "SubscriberError",
    "UnknownEventType",
    "UnknownTarget",
    "VerifyReport",
    "Visit",
    "event_from_draft",
    "event_to_draft",
    "event_type",
    "open_log",
    "parse_date",
    "registered_types",
]
