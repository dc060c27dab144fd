"""The ``solidline`` command line.

Exit codes (stable; cron and systemd act on them):

====  =========================================================================================
0     done (also: nothing new to do)
1     bad input: an event, a draft, a subscriber file or solidline.toml; nothing was written
2     usage error (an unknown option, a missing argument)
3     the log is damaged (a line does not parse or the hash chain is broken)
4     another run holds the lock; try again later
5     the output or the log could not be written (disk full, permissions, fsync failed)
6     some messages could not be delivered (they are retried on the next run)
====  =========================================================================================
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click
import orjson

from ._errors import (
    ConfigError,
    CorruptLog,
    DeliveryError,
    DurabilityError,
    InvalidEvent,
    LogError,
    LogLocked,
    PublishError,
    SolidlineError,
    SubscriberError,
)
from .codec import Recorded, event_from_draft
from .config import Config, load_config
from .dates import parse_date
from .log import open_log
from .model import Event, Fact

__all__ = ["main"]

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_DAMAGED, EXIT_LOCKED, EXIT_IO, EXIT_DELIVERY = range(7)
F = TypeVar("F", bound=Callable[..., Any])


def _exit_code(exc: BaseException) -> int:
    table: list[tuple[type[BaseException], int]] = [
        (LogLocked, EXIT_LOCKED),
        (CorruptLog, EXIT_DAMAGED),
        (DurabilityError, EXIT_IO),
        (PublishError, EXIT_IO),
        (DeliveryError, EXIT_DELIVERY),
        (InvalidEvent, EXIT_INPUT),
        (SubscriberError, EXIT_INPUT),
        (ConfigError, EXIT_INPUT),
        (LogError, EXIT_INPUT),
        (SolidlineError, EXIT_INPUT),
        (OSError, EXIT_IO),
    ]
    return next(code for kind, code in table if isinstance(exc, kind))


def reports_errors(command: F) -> F:
    """Turn solidline's errors into one clear line on stderr and a documented exit code."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (SolidlineError, OSError) as exc:
            click.echo(f"solidline: error: {exc}", err=True)
            sys.exit(_exit_code(exc))

    return run  # type: ignore[return-value]


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="solidline.toml to read (default: ./solidline.toml if present).",
)
@click.version_option(package_name="solidline")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """Keep an immutable record of events between organisations and states, and publish it."""
    ctx.obj = config_path


def config_of(ctx: click.Context, *, required: bool = True) -> Config | None:
    """The configuration named by --config, or ./solidline.toml; None if optional and absent."""
    path: Path | None = ctx.find_root().obj
    if path is None:
        path = Path("solidline.toml")
        if not path.exists() and not required:
            return None
    return load_config(path)


def log_location(ctx: click.Context, given: str | None) -> str:
    """The log named on the command line, else the configuration's, else ./events."""
    if given:
        return given
    config = config_of(ctx, required=False)
    return config.log_location if config else "events"


LOG_ARGUMENT = click.argument("log", required=False, metavar="[LOG]")


# -- append ----------------------------------------------------------------------------------------


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("paths", nargs=-1, required=True, metavar="[LOG] FILE|-")
@click.pass_context
@reports_errors
def append(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Append events from a JSON Lines file of drafts (or - for stdin), all or none.

    Each line is one JSON object: "type", an optional "id", and the event's fields. Drafts whose
    id is already recorded with the same content are skipped, so a file can be appended again.
    LOG defaults to the log of solidline.toml, else ./events.
    """
    if len(paths) > 2:
        raise click.UsageError("give at most a log and one file of drafts")
    log, name = (None, paths[0]) if len(paths) == 1 else paths
    try:
        with click.open_file(name, "rb") as drafts:
            events = list(read_drafts(drafts, name))
    except FileNotFoundError:
        raise click.BadParameter(f"{name}: no such file", param_hint="FILE") from None
    with open_log(log_location(ctx, log)) as target:
        before = target.head.seq
        records = target.append(events)
        written = sum(1 for r in records if r.seq > before)
    head = max([before, *(r.seq for r in records)])
    click.echo(
        f"appended {written} event(s), {len(records) - written} already recorded; "
        f"head is seq {head}"
    )


def read_drafts(stream: IO[bytes], name: str) -> Iterator[Event]:
    """Events from a JSON Lines stream of drafts; errors name the file and line."""
    for number, raw in enumerate(stream, 1):
        where = f"{name}, line {number}"
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"not valid JSON (or not UTF-8): {exc}", where=where) from None
        yield event_from_draft(obj, where=where)


# -- verify ----------------------------------------------------------------------------------------


@main.command()
@LOG_ARGUMENT
@click.option("--chain-only", is_flag=True, help="Check seq and hashes only, not the events.")
@click.pass_context
@reports_errors
def verify(ctx: click.Context, log: str | None, chain_only: bool) -> None:
    """Check every line of the log: JSON, seq, the hash chain and (by default) each event."""
    with open_log(log_location(ctx, log), readonly=True) as source:
        report = source.verify(decode=not chain_only)
    click.echo(
        f"ok: {report.lines} line(s), head seq {report.head.seq}, sha256 {report.head.digest}"
    )


# -- log -------------------------------------------------------------------------------------------


@main.command(name="log")
@LOG_ARGUMENT
@click.option("--type", "types", multiple=True, help="Only events of this type (repeatable).")
@click.option("--entity", "entities", multiple=True, help="Only events naming this entity.")
@click.option("--since", help="Only events dated on or after this EDTF date.")
@click.option("--until", help="Only events dated on or before this EDTF date.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (the drafts).")
@click.pass_context
@reports_errors
def log_command(
    ctx: click.Context,
    log: str | None,
    types: tuple[str, ...],
    entities: tuple[str, ...],
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """List the recorded events, oldest first, filterable by type, entity and date."""
    keep = _log_filter(types, entities, since, until)
    with open_log(log_location(ctx, log), readonly=True) as source:
        for record in source.read():
            if keep(record):
                click.echo(_json_line(record) if as_json else _text_line(record))


def _log_filter(
    types: tuple[str, ...], entities: tuple[str, ...], since: str | None, until: str | None
) -> Callable[[Recorded], bool]:
    low = parse_date(since).lower if since else dt.date.min
    high = parse_date(until).upper if until else dt.date.max

    def keep(record: Recorded) -> bool:
        event = record.event
        if types and event.type not in types:
            return False
        if entities and not set(entities) & set(event.entities()):
            return False
        if (since or until) and not isinstance(event, Fact):
            return False
        return not isinstance(event, Fact) or (event.when.upper >= low and event.when.lower <= high)

    return keep


def _text_line(record: Recorded) -> str:
    event = record.event
    when = event.when.text if isinstance(event, Fact) else ""
    title = event.title if isinstance(event, Fact) else _describe(event)
    day = f"{record.recorded_at:%Y-%m-%d}"
    return f"{record.seq:>6}  {day}  {event.type:<22} {when:<12} {record.id}  {title}"


def _describe(event: Event) -> str:
    target = getattr(event, "target", None)
    if target:
        return f"→ {target}"
    return getattr(event, "name", "")


def _json_line(record: Recorded) -> str:
    from .codec import event_to_draft

    return orjson.dumps({"seq": record.seq, **event_to_draft(record.event)}).decode()


# -- timeline --------------------------------------------------------------------------------------


@main.command(name="timeline")
@LOG_ARGUMENT
@click.option("--relationship", "-r", help="Two entity ids: cpusa~cpv.")
@click.option("--entity", "-e", help="One entity id.")
@click.option("--as-of", "as_of", help="What the record said then (ISO time, UTC if no zone).")
@click.option(
    "--format",
    "output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: TimelineJS's JSON format.",
)
@click.pass_context
@reports_errors
def timeline_command(
    ctx: click.Context,
    log: str | None,
    relationship: str | None,
    entity: str | None,
    as_of: str | None,
    output: str,
) -> None:
    """Show the timeline of the record, of one entity or of one relationship."""
    from .exports import timeline_text, timelinejs
    from .timeline import timeline

    if relationship and entity:
        raise click.UsageError("give --relationship or --entity, not both")
    moment = _parse_moment(as_of) if as_of else None
    with open_log(log_location(ctx, log), readonly=True) as source:
        try:
            result = timeline(source, relationship=relationship, entity=entity, as_of=moment)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    if output == "json":
        click.echo(orjson.dumps(timelinejs(result), option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(timeline_text(result, color=sys.stdout.isatty()))


def _parse_moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO time such as 2026-11-23T14:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# -- publish ---------------------------------------------------------------------------------------


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="solidline.toml to read (also accepted before the command).")
@click.pass_context
@reports_errors
def publish(ctx: click.Context, config_path: Path | None) -> None:
    """Write feeds, timeline pages and TimelineJS files into [site] output.

    Safe under cron: a run with nothing new since the last one changes nothing and says so;
    files are replaced whole and only when their bytes change; a damaged log (exit 3) or an
    output folder that cannot be written (exit 5) leaves the previous output as it was; a run
    while another holds the lock exits with 4.
    """
    from .site import publish as publish_site

    config = load_config(config_path) if config_path else config_of(ctx)
    assert config is not None
    click.echo(publish_site(config).summary())


# -- digest ----------------------------------------------------------------------------------------


if TYPE_CHECKING:  # imported when a digest runs: jinja2 and css-inline are slow to load
    from .delivery import Ledger, Transport
    from .digest import Digest
    from .newsletter import Composed, Mailing
    from .subscribers import Subscriber
    from .windows import Period, Window


@main.command()
@LOG_ARGUMENT
@click.option(
    "--period",
    type=click.Choice(["daily", "weekly", "monthly"]),
    default=None,
    help="The window: a day, a week (Monday to Monday) or a month, UTC "
    "(default: [newsletter] period).",
)
@click.option(
    "--since-last-send", is_flag=True, help="The window from the end of the last one sent to now."
)
@click.option(
    "--ending",
    metavar="DATE",
    help="The window that ends at midnight UTC of DATE (default: the last one ended).",
)
@click.option(
    "--send",
    is_flag=True,
    help="Deliver through the ledger (SMTP by default) instead of writing a preview.",
)
@click.option("--send-empty", is_flag=True, help="Also mail subscribers with nothing new.")
@click.option(
    "--outbox",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the preview (default: [newsletter] outbox).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="solidline.toml to read (also accepted before the command).",
)
@click.pass_context
@reports_errors
def digest(
    ctx: click.Context,
    log: str | None,
    period: Period | None,
    since_last_send: bool,
    ending: str | None,
    send: bool,
    send_empty: bool,
    outbox: Path | None,
    config_path: Path | None,
) -> None:
    """Mail subscribers what the record gained in the last window of recorded time.

    Without --send, writes each message as an .eml file and an HTML preview into the outbox
    folder, so that a person can look first. With --send, plans every message in the delivery
    ledger, then sends and records each: a run killed at any point and run again delivers every
    message once (at most the one in flight at the kill twice, with the same Message-ID). Exit
    codes: 1 a bad subscriber file or configuration (nothing sent), 4 another run holds the
    ledger, 6 some messages could not be delivered (retried on the next run).
    """
    from .newsletter import Mailing

    config = load_config(config_path) if config_path else config_of(ctx)
    assert config is not None
    settings = config.require_newsletter()
    mailing = Mailing.from_config(config)
    if since_last_send and (period or ending):
        raise click.UsageError("give --since-last-send, or --period/--ending, not both")
    key, preview = _unsubscribe_key(settings.unsubscribe_key_env, send)
    location = log if log else config.log_location
    ledger_folder = config.path(settings.ledger)
    run = _DigestRun(config, mailing, key, preview, send_empty)
    if not send:
        window = _window(settings.period, period, since_last_send, ending, ledger_folder)
        run.preview(location, window, outbox or config.path(settings.outbox))
        return
    from .delivery import Ledger

    with Ledger.open(ledger_folder) as ledger:
        window = _window(settings.period, period, since_last_send, ending, ledger_folder, ledger)
        if window.end > dt.datetime.now(dt.UTC):
            raise click.UsageError(
                f"the window {window.dates()} has not ended; sending it now would miss what is "
                "recorded before it ends (preview it without --send)"
            )
        run.send(location, window, ledger)


def _unsubscribe_key(variable: str, send: bool) -> tuple[bytes, bool]:
    import os

    from .unsubscribe import PREVIEW_KEY

    value = os.environ.get(variable)
    if value:
        return value.encode(), False
    if send:
        raise ConfigError(
            f"the environment variable {variable} holds no unsubscribe key; set it (a long "
            "random secret, the same on every run) before --send"
        )
    click.echo(
        f"note: {variable} is unset: unsubscribe links are signed with a PREVIEW key and "
        "will not work; set it before --send"
    )
    return PREVIEW_KEY, True


def _window(
    default: Period,
    period: Period | None,
    since_last_send: bool,
    ending: str | None,
    folder: Path,
    ledger: Ledger | None = None,
) -> Window:
    from .delivery import Ledger
    from .windows import last_window, window_ending, window_since

    now = dt.datetime.now(dt.UTC)
    chosen = period or default
    if since_last_send:
        last = (ledger or Ledger.read_only(folder)).last_window_end()
        return window_since(last or last_window(chosen, now).start, now)
    if ending is None:
        return last_window(chosen, now)
    try:
        return window_ending(chosen, dt.date.fromisoformat(ending))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ending") from None


class _DigestRun:
    """One ``digest`` run: select, compose, then preview or plan and send."""

    def __init__(
        self, config: Config, mailing: Mailing, key: bytes, preview: bool, send_empty: bool
    ) -> None:
        self.config = config
        self.mailing = mailing
        self.key = key
        self.is_preview = preview
        self.send_empty = send_empty

    def _select(self, location: str, window: Window) -> tuple[Digest, tuple[Subscriber, ...]]:
        from .digest import select_digest_and_entities
        from .subscribers import load_subscribers

        with open_log(location, readonly=True) as source:
            # interests are checked against the record as it is now: an entity defined after
            # the window is not a subscriber's mistake (one fold gives both)
            selected, known = select_digest_and_entities(
                source, window, upcoming_days=self.mailing.upcoming_days
            )
        settings = self.config.require_newsletter()
        subscribers = load_subscribers(self.config.path(settings.subscribers), entities=known)
        click.echo(
            f"{window.period} window {window.dates()} ({window.label}): "
            f"{len(selected.entries)} new, {len(selected.changes)} corrected or retracted, "
            f"{len(selected.upcoming)} coming up, {len(selected.anniversaries)} anniversaries; "
            f"{len(subscribers)} subscriber(s)"
        )
        return selected, subscribers

    def _compose(
        self, selected: Digest, subscribers: tuple[Subscriber, ...],
        skip: Callable[[str], bool] | None = None,
    ) -> Iterator[Composed] | None:
        """The messages of the digest, made one at a time as they are asked for; None (and it
        says so) when the window holds nothing and ``--send-empty`` was not given."""
        from .newsletter import compose_each

        if selected.is_empty and not self.send_empty:
            click.echo("nothing new in the window: no digest (--send-empty mails one anyway)")
            return None
        return compose_each(
            selected,
            subscribers,
            self.mailing,
            key=self.key,
            preview=self.is_preview,
            send_empty=self.send_empty,
            skip=skip,
        )

    def preview(self, location: str, window: Window, outbox: Path) -> None:
        from .delivery import write_outbox

        selected, subscribers = self._select(location, window)
        composed = list(self._compose(selected, subscribers) or ())
        if not composed:
            return
        index = write_outbox(
            outbox / window.label,
            [(c.message, c.rendered.subject, c.rendered.html) for c in composed],
        )
        cut = sum(1 for c in composed if c.rendered.omitted)
        click.echo(
            f"wrote {len(composed)} message(s) to {index.parent}; preview: {index}"
            + (f" ({cut} cut to the HTML size limit)" if cut else "")
        )

    def send(self, location: str, window: Window, ledger: Ledger) -> None:
        from .delivery import deliver_pending

        selected, subscribers = self._select(location, window)
        earlier = len(ledger.pending())
        planned, window_line = 0, {
            "period": window.period,
            "start": window.start.isoformat(),
            "end": window.end.isoformat(),
        }
        transport = self._transport()
        try:
            report = deliver_pending(ledger, transport)  # what an earlier run left
            with contextlib.closing(self._spooled(selected, subscribers, ledger)) as batches:
                for lines in batches:
                    planned += ledger.record_planned(window_line, lines)
                    if report.stopped is None:
                        report.add(deliver_pending(ledger, transport, lines=lines))
                    else:
                        report.deferred += [(line["to"], "not tried: the run stopped")
                                            for line in lines]
        finally:
            transport.close()
        click.echo(f"planned {planned} new message(s); {earlier + planned} to send")
        click.echo(
            f"sent {report.sent}, rejected {len(report.rejected)}, "
            f"left for the next run {len(report.deferred)}"
        )
        for recipient, reason in report.rejected:
            click.echo(f"  rejected: {recipient}: {reason}", err=True)
        if not report.ok:
            why = report.stopped or (report.deferred or report.rejected)[0][1]
            raise DeliveryError(f"not every message was delivered: {why}")

    def _spooled(
        self, selected: Digest, subscribers: tuple[Subscriber, ...], ledger: Ledger
    ) -> Generator[list[dict[str, Any]], None, None]:
        """The new messages, composed and spooled in batches by a child process, as the
        ``planned`` lines of each batch: the parent sends one batch while the child composes
        the next. The batches start small, so that sending starts soon."""
        from ._background import made_in_child

        composed = self._compose(selected, subscribers, skip=ledger.knows)
        if composed is None:
            return

        def spool() -> Iterator[list[dict[str, Any]]]:  # in the child: composing starts there
            size = 4
            while batch := [c.message for c in itertools.islice(composed, size)]:
                yield ledger.spool_messages(batch)
                size = min(2 * size, 64)

        yield from made_in_child(spool)

    def _transport(self) -> Transport:
        import ssl

        from .delivery import OutboxTransport
        from .smtp import SmtpTransport

        settings = self.config.require_newsletter()
        if settings.transport == "outbox":
            return OutboxTransport(self.config.path(settings.outbox))
        smtp = self.config.smtp
        ca_file = str(self.config.path(smtp.ca_file)) if smtp.ca_file else None
        return SmtpTransport(
            smtp, password=smtp.password(), ssl_context=ssl.create_default_context(cafile=ca_file)
        )
