"""solidline: an immutable record of events between organisations and states.

Record events in an append-only, hash-chained log; read them back as typed objects; fold them
into timelines per relationship and entity; publish feeds and mail digests.
"""

from __future__ import annotations

__version__ = "0.1.0.dev0"  # before the imports: site.py reads it while the package loads

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
    InvalidEventDate,
    LogError,
    LogLocked,
    PublishError,
    SolidlineError,
    SubscriberError,
    UnknownEventType,
    UnknownTarget,
)
from .codec import Recorded, event_from_draft, event_to_draft, event_type, registered_types
from .config import Config, load_config
from .dates import EDTFDate, Precision, parse_date
from .feeds import FeedSpec, render_feed
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
from .site import PublishReport, publish
from .timeline import Anniversary, Entry, Projection, Timeline, timeline
from .unsubscribe import verify_unsubscribe_token

__all__ = [
    "AgreementSigned",
    "Amendment",
    "Anniversary",
    "ChainBroken",
    "Config",
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
    "Entry",
    "Event",
    "EventLog",
    "Fact",
    "FeedSpec",
    "Head",
    "HeadMoved",
    "InvalidDate",
    "InvalidEvent",
    "InvalidEventDate",
    "JsonlLog",
    "LogError",
    "LogLocked",
    "Meeting",
    "MemoryLog",
    "Participant",
    "Period",
    "Person",
    "Precision",
    "Projection",
    "PublishError",
    "PublishReport",
    "Recorded",
    "RelationsEstablished",
    "Retracted",
    "SameAs",
    "SolidlineError",
    "Source",
    "Statement",
    "StatusChanged",
    "SubscriberError",
    "Timeline",
    "UnknownEventType",
    "UnknownTarget",
    "VerifyReport",
    "Visit",
    "event_from_draft",
    "event_to_draft",
    "event_type",
    "load_config",
    "open_log",
    "parse_date",
    "publish",
    "registered_types",
    "render_feed",
    "timeline",
    "verify_unsubscribe_token",
]
