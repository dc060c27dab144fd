"""Events to JSON and back: the one cattrs converter, the registry of event types, upcasters.

A log line is an *envelope* around an event's data::

    {"seq":42,"id":"…","type":"meeting","v":1,"recorded_at":"2026-11-23T14:00:00.123456Z",
     "prev":"<sha256 of the line before>","data":{…}}

``data`` holds the event's fields in class order, leaving out those equal to their default, so
that adding an optional field to a type does not change the lines already written. A *draft* is
the same data flat, with ``type`` and ``id`` beside the fields: what ``solidline append`` reads.

Lines written by an older schema version are upcast on read by the functions registered with the
type; the file itself is never rewritten.
"""

from __future__ import annotations

import functools
import hashlib
import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import cattrs
import orjson
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.orjson import make_converter

from ._errors import InvalidEvent, UnknownEventType
from .dates import EDTFDate, parse_date
from .model import BUILTIN_EVENT_TYPES, EntityDefined, Event, ValueCheck

__all__ = [
    "Recorded",
    "Upcaster",
    "converter",
    "event_from_draft",
    "event_to_draft",
    "event_type",
    "registered_types",
]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
E = TypeVar("E", bound=type[Event])

converter = make_converter(omit_if_default=True, forbid_extra_keys=True)

TYPE_NAME = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*")
_TYPES: dict[str, type[Event]] = {}
_UPCASTERS: dict[str, dict[int, Upcaster]] = {}
_FAST: dict[type, Callable[[Any], Any] | None] = {}  # see "the fast path" below
_FAST_DATA: dict[type, Callable[[Any], dict[str, Any]] | None] = {}  # see "the fast data path"
_ID_CHECKS: dict[type, Callable[[Any, str], bool]] = {}


# -- strict scalars: cattrs would otherwise turn 5 into "5" and "5" into 5 -------------------------


def _strict(kind: type[Any], name: str) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        # bool is an int to Python, never to a reader of the record
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"expected {name}, got {type(value).__name__} {value!r:.60}")
        return value

    return structure


converter.register_structure_hook(str, _strict(str, "a string"))
converter.register_structure_hook(int, _strict(int, "a whole number"))
converter.register_structure_hook(bool, _strict(bool, "true or false"))


def _structure_date(value: Any, _: Any) -> EDTFDate:
    if not isinstance(value, str):
        raise TypeError(f"expected an EDTF date string, got {type(value).__name__} {value!r:.60}")
    return parse_date(value)


converter.register_structure_hook(EDTFDate, _structure_date)
converter.register_unstructure_hook(EDTFDate, str)


# -- the registry ----------------------------------------------------------------------------------


def event_type(
    name: str, *, version: int = 1, upcasters: Mapping[int, Upcaster] | None = None
) -> Callable[[E], E]:
    """Register an application's own event class under a type name and schema version.

    Args:
        name: the type name written to the log, e.g. ``"myapp.rally"``.
        version: the current schema version of the class.
        upcasters: for each older version ``n``, a function turning version-``n`` data into
            version ``n + 1`` data. Lines of older versions are upcast on read.

    Returns:
        A class decorator. The class must be an attrs class deriving from :class:`Event`.

    Raises:
        ValueError: the name is taken by another class, or an upcaster is missing.
    """

    def register(cls: E) -> E:
        cls.type = name
        cls.version = version
        _register(cls, dict(upcasters or {}))
        return cls

    return register


def _register(cls: type[Event], upcasters: dict[int, Upcaster]) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Event) and _is_attrs_class(cls)):
        raise TypeError(f"{cls!r} is not an attrs class deriving from solidline.Event")
    if not TYPE_NAME.fullmatch(cls.type or ""):
        raise ValueError(f"{cls.type!r} is not a type name like 'meeting' or 'myapp.rally'")
    taken = _TYPES.get(cls.type)
    if taken is not None and taken is not cls:
        raise ValueError(f"event type {cls.type!r} is already registered to {taken.__qualname__}")
    missing = [v for v in range(1, cls.version) if v not in upcasters]
    if missing:
        raise ValueError(f"{cls.type!r} v{cls.version} needs upcasters from versions {missing}")
    _TYPES[cls.type] = cls
    _UPCASTERS[cls.type] = upcasters
    _FAST.pop(cls, None)
    _FAST_DATA.pop(cls, None)
    _ID_CHECKS.pop(cls, None)
    converter.register_unstructure_hook(
        cls, make_dict_unstructure_fn(
            cls, converter, _cattrs_omit_if_default=True, id=override(omit=True)
        )
    )
    converter.register_structure_hook(
        cls, make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=True)
    )


def _is_attrs_class(cls: type) -> bool:
    return attrs.has(cls)  # a function of its own: attrs.has narrows cls away from type[Event]


def registered_types() -> Mapping[str, type[Event]]:
    """Every registered event type by name (built-in and the application's own)."""
    return dict(_TYPES)


for _cls in BUILTIN_EVENT_TYPES:
    _register(_cls, {})


# -- events to data and back -----------------------------------------------------------------------


def event_data(event: Event) -> dict[str, Any]:
    """The event's fields as JSON-ready data, without ``id``, defaults left out."""
    _class_for(event.type, where=None)
    data: dict[str, Any] = converter.unstructure(event, type(event))
    return data


def data_bytes(event: Event) -> bytes:
    """The event's data as compact JSON: what identifies its content."""
    data = _proven_data(event)
    if data is not None:
        return data
    try:
        return orjson.dumps(event_data(event))
    except (TypeError, AttributeError) as exc:
        # orjson: lone surrogates, non-JSON values in ``changes``; cattrs: a field holding
        # something else than its type (a string where a Source belongs)
        raise InvalidEvent(f"cannot be written as JSON: {exc}") from None


def encode_event(event: Event, *, where: str) -> tuple[str, bytes]:
    """The id an event is recorded under (its own, or one made from its content) and its data,
    once it is sure that a reader will decode them.

    Args:
        where: the event's place, for error messages (``"batch item 3"``).

    Raises:
        InvalidEvent: the event cannot be written, or could not be read back.
    """
    data = _proven_data(event)  # the common case: made and proven readable in one pass
    if data is not None:
        event_id = event.id or generated_id(event, data)
        if _readable_id(event, event_id):
            return event_id, data
    data = data_bytes(event)
    event_id = event.id or generated_id(event, data)
    # attrs checks a field's type only where a validator does (aliases=(5,) passes): decode
    # the data as a reader will, so that nothing is written that cannot be read back
    decode_event(event.type, event.version, event_id, orjson.loads(data),
                 where=f"{where} ({event_id})")
    return event_id, data


def _proven_data(event: Event) -> bytes | None:
    """The event's data, where the fast data path vouches that a reader decodes it (its id
    aside: see :func:`_readable_id`); None where it cannot tell."""
    cls = type(event)
    fast = _FAST_DATA.get(cls, _UNBUILT)
    if fast is _UNBUILT:
        fast = _fast_data_fn(cls)
    if fast is None or _TYPES.get(event.type) is not cls:
        return None
    try:
        return orjson.dumps(fast(event))
    except Exception:  # the plain path makes the data, or says what is wrong with it
        return None


def _readable_id(event: Event, event_id: object) -> bool:
    """Whether a reader takes ``event_id`` as the id of ``event`` (its field's own check)."""
    cls = type(event)
    check = _ID_CHECKS.get(cls)
    if check is None:
        check = _ID_CHECKS[cls] = _id_check(attrs.fields(cls).id)
    return type(event_id) is str and check(event, event_id)


def _id_check(field: attrs.Attribute[Any]) -> Callable[[Event, str], bool]:
    """The test of an id against the ``id`` field's validator (a model's test called directly)."""
    validator = field.validator
    if field.converter is not None:
        return lambda event, event_id: False  # the id read back would be another
    if isinstance(validator, ValueCheck):
        passes = validator.passes
        return lambda event, event_id: bool(passes(event_id))

    def check(event: Event, event_id: str) -> bool:
        try:
            if validator is not None:
                validator(event, field, event_id)
        except Exception:
            return False
        return True

    return check


def generated_id(event: Event, data: bytes) -> str:
    """A stable id from the content, so that re-appending the same draft is a no-op.

    An entity's definition is ``entity:<entity id>``, so that a second, different definition of
    the same entity is refused (correct the first instead).
    """
    if isinstance(event, EntityDefined):
        return f"entity:{event.entity}"
    digest = hashlib.sha256(event.type.encode() + b"\0" + data).hexdigest()
    return f"{event.type.replace('.', '-')}-{digest[:20]}"


def decode_event(
    type_name: str, version: int, event_id: str, data: dict[str, Any], *, where: str | None
) -> Event:
    """Build the event object from a line's parts, upcasting older versions.

    Raises:
        UnknownEventType: no class is registered for ``type_name``.
        InvalidEvent: the data does not fit the class; ``field`` names the path.
    """
    cls = _TYPES.get(type_name) or _class_for(type_name, where=where)
    if version != cls.version:
        data = _upcast(cls, version, data, where=where)
    data["id"] = event_id
    return structure_event(cls, data, where=where)


def structure_event(cls: type[Event], data: dict[str, Any], *, where: str | None) -> Event:
    """``cls`` from JSON data, with errors that name the field path."""
    fast = _FAST.get(cls, _UNBUILT)
    if fast is _UNBUILT:
        fast = _fast_structure_fn(cls)
    if fast is not None and not _validators_disabled():
        try:
            return fast(data)  # type: ignore[no-any-return]
        except Exception:  # cattrs structures it, or says exactly what is wrong
            pass
    try:
        event: Event = converter.structure(data, cls)
    except InvalidEvent as exc:
        raise InvalidEvent(exc.reason, field=exc.field, where=where) from None
    except Exception as exc:  # cattrs wraps every fault of a nested field in a group
        path, message = _first_fault(exc)
        raise InvalidEvent(message, field=path or None, where=where) from None
    return event


# -- the fast path: what cattrs would build, for the data that is as it should be -----------------
#
# cattrs with detailed validation wraps every field in its own try block and builds an exception
# group per nested value: right for telling a user which field is wrong, slow for a million lines
# that are fine. For each class, a function is compiled from its fields' types that checks the
# data as strictly as the hooks above do and builds the object as the class's __init__ would,
# with the class's own converters and validators (the model's ValueCheck tests pasted in, the
# others called). Anything unusual raises, and the data goes to the converter, which builds
# the same object or reports the fault with its path: one configuration, two speeds.


class _Unusual(Exception):
    """Data the fast path leaves to the converter."""


_UNBUILT: Any = object()
_MISSING: Any = object()
# the fast path runs validators as attrs' __init__ does when they are on; when they are off,
# the converter builds the objects (and nothing unvalidated is remembered)
_validators_disabled = attrs.validators.get_disabled


def _fast_structure_fn(cls: type) -> Callable[[Any], Any] | None:
    """The fast structure function of an attrs class, or None where its fields are too unusual."""
    _FAST[cls] = None  # also what a class that contains itself gets while it is being built
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: leave the class to cattrs
        return None
    names: dict[str, Any] = {"cls": cls, "Unusual": _Unusual, "M": _MISSING,
                             "parse_date": parse_date, "shared": _SHARED}
    fields = attrs.fields(cls)
    body = ["def structure(data):", "    if type(data) is not dict: raise Unusual",
            "    n = len(data)"]  # plus one for each field left out: the count of fields
    for i, field in enumerate(fields):
        share = field.name != "id"  # an event's id is its own
        converted = _fast_value(hints.get(field.name), "v", names, share=share)
        if converted is None or not field.init or field.alias != field.name:
            return None
        checks, value = converted
        if field.default is attrs.NOTHING:  # required: a missing key raises KeyError
            body.extend([f"    v = data[{field.name!r}]", *("    " + c for c in checks),
                         f"    a{i} = {value}"])
            continue
        if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            if field.default.takes_self:
                return None
            names[f"factory{i}"] = field.default.factory
            default = f"factory{i}()"
        else:
            names[f"default{i}"] = field.default
            default = f"default{i}"
        body.extend([f"    v = data.get({field.name!r}, M)", "    if v is M:",
                     "        n += 1", f"        a{i} = {default}", "    else:",
                     *("        " + c for c in checks), f"        a{i} = {value}"])
    body.extend([f"    if n != {len(fields)}: raise Unusual",
                 f"    if len(shared) > {_SHARED_SIZE}: shared.clear()"])
    body.extend("    " + line for line in _construction(cls, hints, names))
    exec(compile("\n".join(body), f"<solidline fast structure {cls.__qualname__}>", "exec"), names)
    _FAST[cls] = names["structure"]
    return _FAST[cls]


def _construction(cls: type, hints: dict[str, Any], names: dict[str, Any]) -> list[str]:
    """Statements that build ``cls`` from the checked values ``a0``, ``a1`` … and return it.

    What the class's ``__init__`` (generated by attrs) does, without its keyword arguments: each
    value through the field's converter and into its slot, then the field validators in field
    order, then ``__attrs_post_init__``. The converters and validators are the class's own, so
    a value is held to exactly the same rules. A class this cannot see into (its own
    ``__init__``, no slots, a cached hash) is called instead.
    """
    fields = attrs.fields(cls)
    setters = _slot_setters(cls)
    if setters is None:
        return [f"return cls({', '.join(f'{f.name}=a{i}' for i, f in enumerate(fields))})"]
    names["new"] = object.__new__
    lines = ["self = new(cls)"]
    for i, field in enumerate(fields):
        names[f"field{i}"] = field
        names[f"set{i}"] = setters[field.name]
        lines.extend(_conversion(field, hints[field.name], i, names))
        lines.append(f"set{i}(self, a{i})")
    for i, field in enumerate(fields):
        lines.extend(_validation(field.validator, i, names))
    if hasattr(cls, "__attrs_post_init__"):
        lines.append("self.__attrs_post_init__()")
    return [*lines, "return self"]


def _conversion(field: attrs.Attribute[Any], kind: Any, i: int, names: dict[str, Any]
                ) -> list[str]:
    """The statement that passes ``a{i}`` through the field's converter, as ``__init__`` would."""
    convert = field.converter
    if isinstance(convert, attrs.Converter):
        wrapped: Any = convert  # attrs' stubs leave out what a Converter holds
        names[f"convert{i}"] = wrapped.converter
        extra = ", self" * wrapped.takes_self + f", field{i}" * wrapped.takes_field
        return [f"a{i} = convert{i}(a{i}{extra})"]
    # tuple() of a tuple is the tuple itself: the fast value of a tuple field is one already
    if convert is tuple and typing.get_origin(kind) is tuple and (
        field.default is attrs.NOTHING or type(field.default) is tuple
    ):
        return []
    if convert is None:
        return []
    names[f"convert{i}"] = convert
    return [f"a{i} = convert{i}(a{i})"]


def _validation(validator: Any, i: int, names: dict[str, Any]) -> list[str]:
    """Statements that hold ``a{i}`` to the field's validator, as ``__init__`` would.

    The model's :class:`~solidline.model.ValueCheck` tests are pasted in (a value that fails
    goes to the converter, which calls the validator and reports its message); any other
    validator is called.
    """
    if validator is None:
        return []
    if isinstance(validator, ValueCheck):
        used = validator.names
        if all(names.setdefault(name, value) is value for name, value in used.items()):
            return [f"value = a{i}", f"if not ({validator.test}): raise Unusual"]
    names[f"validate{i}"] = validator
    return [f"validate{i}(self, field{i}, a{i})"]


def _slot_setters(cls: type) -> dict[str, Callable[[Any, Any], None]] | None:
    """Each field's slot setter, where the class's ``__init__`` is the one attrs generated."""
    init = getattr(cls, "__init__", None)
    code = getattr(init, "__code__", None)
    if code is None or not code.co_filename.startswith("<attrs generated"):
        return None
    if hasattr(cls, "__attrs_pre_init__") or hasattr(cls, "_attrs_cached_hash"):
        return None
    setters: dict[str, Callable[[Any, Any], None]] = {}
    for field in attrs.fields(cls):
        slot = next((k.__dict__[field.name] for k in cls.__mro__ if field.name in k.__dict__),
                    None)
        if not isinstance(slot, types.MemberDescriptorType):
            return None
        setters[field.name] = slot.__set__
    return setters


def _fast_value(kind: Any, var: str, names: dict[str, Any], *, share: bool = True
                ) -> tuple[list[str], str] | None:
    """Statements that check ``var`` holds JSON of type ``kind``, and the expression for it.

    Short strings are kept once (``share``): a million events name a few hundred entities.
    """
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    simple = {str: "str", int: "int", bool: "bool"}
    if kind is str and share:  # one copy of each short text: ids of entities, places, roles
        return [f"if type({var}) is not str: raise Unusual"], (
            f"(shared.setdefault({var}, {var}) if len({var}) <= {_SHARED_LENGTH} else {var})"
        )
    if kind in simple:  # exact types: JSON gives no subclasses, and bool is not an int here
        return [f"if type({var}) is not {simple[kind]}: raise Unusual"], var
    if kind is Any:
        return [], var
    if kind is EDTFDate:
        return [f"if type({var}) is not str: raise Unusual"], f"parse_date({var})"
    if origin is typing.Literal and all(type(a) is str for a in args):
        name = f"choices{len(names)}"
        names[name] = {a: a for a in args}  # the value, and the one copy of it to keep
        return [f"if type({var}) is not str or {var} not in {name}: raise Unusual"], (
            f"{name}[{var}]"
        )
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        inner = _fast_value(next(a for a in args if a is not type(None)), var, names,
                            share=share)
        return _optional(inner, var)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _fast_tuple(args[0], var, names)
    if origin is dict and args and args[0] is str and args[1] is Any:
        return _str_keys(var), f"dict({var})"
    nested = _nested(kind, names)
    return None if nested is None else ([], f"{nested}({var})")


def _fast_tuple(kind: Any, var: str, names: dict[str, Any]) -> tuple[list[str], str] | None:
    """:func:`_fast_value` for ``tuple[kind, ...]``, which JSON holds as a list."""
    checks = [f"if type({var}) is not list and type({var}) is not tuple: raise Unusual"]
    name = _nested(kind, names)  # a nested class: its function checks each item
    if name is None:
        item = _fast_value(kind, "x", names)
        if item is None:
            return None
        each, name = _items(item, var, names)
        if name is None:
            return checks + each, f"tuple({var})"
    return checks, f"tuple(map({name}, {var}))"  # map: no comprehension's frame


def _optional(inner: tuple[list[str], str] | None, var: str) -> tuple[list[str], str] | None:
    """The checks and expression of an optional value, from those of the value (``inner``)."""
    if inner is None:
        return None
    checks = [f"if {var} is not None:", *("    " + c for c in inner[0])] if inner[0] else []
    return checks, var if inner[1] == var else f"(None if {var} is None else {inner[1]})"


def _str_keys(var: str) -> list[str]:
    """Checks that ``var`` is a dict whose keys are strings."""
    return [f"if type({var}) is not dict: raise Unusual", f"for k in {var}:",
            "    if type(k) is not str: raise Unusual"]


def _items(item: tuple[list[str], str], var: str, names: dict[str, Any]
           ) -> tuple[list[str], str | None]:
    """For a collection ``var`` whose items ``x`` have the checks and expression ``item``: the
    checks of every item where an item is kept as it is, else the name of a function made in
    ``names`` that checks one item and gives its value."""
    if item[1] == "x":
        return [f"for x in {var}:", *("    " + c for c in item[0])] if item[0] else [], None
    name = f"item{len(names)}"
    exec(f"def {name}(x):\n" + "".join(f"    {c}\n" for c in item[0]) +
         f"    return {item[1]}\n", names)
    return [], name


def _nested(kind: Any, names: dict[str, Any]) -> str | None:
    """The name in ``names`` of the fast structure function of a nested value class, if any."""
    if not (isinstance(kind, type) and attrs.has(kind) and not issubclass(kind, Event)):
        return None
    nested = _FAST[kind] if kind in _FAST else _fast_structure_fn(kind)
    if nested is None:
        return None
    name = f"nested{len(names)}"
    names[name] = _memoized(kind, nested, names, name)
    return name


_MEMO_SIZE = 1 << 16
_SHARED: dict[str, str] = {}
_SHARED_LENGTH = 32
_SHARED_SIZE = 1 << 18


def _memoized(cls: type, structure: Callable[[Any], Any], names: dict[str, Any], name: str
              ) -> Callable[[Any], Any]:
    """``structure`` for a value class that is made of strings only, remembering what it made.

    The same participant or person appears in many events: its object is built and validated
    once, and shared (it is frozen). The data's items are the key: a successful build holds
    only strings and None, so no ``1 == True`` can mistake one value for another, and a value
    that cannot be a key (a list) is not ours to remember. Where values rarely repeat (sources,
    with their own URLs and quotes), remembering only costs: after a few thousand look-ups the
    generated code that calls it as ``names[name]`` is pointed at ``structure`` itself.
    """
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in attrs.fields(cls)]
    if not all(hints[f] in (str, str | None, EDTFDate, EDTFDate | None) for f in fields):
        return structure
    made: dict[tuple[Any, ...], Any] = {}
    tally = [0, 0]  # look-ups, finds

    def remembered(data: Any) -> Any:
        if type(data) is not dict:
            raise _Unusual
        try:
            found = tuple(data.items())
            value = made.get(found, _MISSING)
        except TypeError:
            return structure(data)
        if value is not _MISSING:
            tally[1] += 1
            return value
        tally[0] += 1
        if tally[0] >= 4096 and tally[1] * 3 < tally[0]:
            names[name] = structure
            made.clear()
        value = structure(data)
        if len(made) >= _MEMO_SIZE:
            made.clear()
        made[found] = value
        return value

    return remembered


# -- the fast data path: cattrs' data for an event, proven readable in the same pass -------------
#
# Appending an event needs its data (cattrs' unstructure hooks) and the proof that a reader will
# decode it: attrs checks a field's type only where a validator does (``aliases=(5,)`` builds),
# and an object may have been built with the validators off. Decoding the data back proves it,
# at twice the cost of making it. Instead, for each class a function is compiled that reads the
# fields and checks each value is exactly what the fast structure path accepts when it reads it
# back (type for type, a date whose text parses), holds the values to the class's converters
# (they must give the value back) and validators as a reader's ``__init__`` will, and builds the
# data as cattrs' generated hooks do: the fields without a default first, then the others where
# they differ from it, each in class order. Anything unusual raises, and the caller takes the
# plain path (cattrs, then decoding back), which refuses a bad event naming its field. Tests
# compare the two paths byte for byte, and check that what this path accepts reads back.

def _fast_data_fn(cls: type) -> Callable[[Any], dict[str, Any]] | None:
    """The fast data function of an attrs class, or None where its fields are too unusual.

    An event's ``id`` is left out of its data, and left to the caller to check: a reader sees
    the id the log gives it (the event's own or one made from the data).
    """
    _FAST_DATA[cls] = None  # also what a class that contains itself gets while it is being built
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: leave the class to cattrs
        return None
    names: dict[str, Any] = {"cls": cls, "Unusual": _Unusual}
    body = ["def data(self):", "    if type(self) is not cls: raise Unusual"]
    validation: list[str] = []
    required: list[str] = []
    optional: list[str] = []
    for i, field in enumerate(attrs.fields(cls)):
        if issubclass(cls, Event) and field.name == "id":
            continue
        lines = _field_data(field, hints.get(field.name), i, names)
        if lines is None:
            return None
        body.extend("    " + line for line in lines)
        validation.extend("    " + line for line in _validation(field.validator, i, names))
        if field.default is attrs.NOTHING:
            required.append(f"{field.name!r}: o{i}")
        else:
            optional.extend(_unless_default(field, i, names))
    body.extend(validation)
    if hasattr(cls, "__attrs_post_init__"):  # as a reader's __init__ will call it
        body.append("    self.__attrs_post_init__()")
    body.append(f"    data = {{{', '.join(required)}}}")
    body.extend("    " + line for line in optional)
    body.append("    return data")
    exec(compile("\n".join(body), f"<solidline fast data {cls.__qualname__}>", "exec"), names)
    _FAST_DATA[cls] = names["data"]
    return _FAST_DATA[cls]


def _field_data(field: attrs.Attribute[Any], kind: Any, i: int, names: dict[str, Any]
                ) -> list[str] | None:
    """Statements that check field ``i`` of ``self`` and put its data in ``o{i}``; ``a{i}`` is
    the value as a reader's ``__init__`` will hold it to the validators (the same value)."""
    convert = field.converter
    if not field.init or field.alias != field.name or (
        isinstance(convert, attrs.Converter) and convert.takes_self  # type: ignore[attr-defined]
    ):
        return None
    default: Any = field.default  # (attrs' stubs call Factory a function)
    if isinstance(default, attrs.Factory) and default.takes_self:  # type: ignore[arg-type]
        return None
    converted = _data_value(kind, f"a{i}", names)
    if converted is None:
        return None
    checks, value = converted
    names[f"field{i}"] = field
    conversion = _conversion(field, kind, i, names)
    lines = [f"a{i} = self.{field.name}", *checks, f"o{i} = {value}"]
    if conversion:  # a reader converts the value it reads: that must give it back unchanged
        lines.extend([f"v{i} = a{i}", *conversion,
                      f"if a{i} is not v{i} and a{i} != v{i}: raise Unusual"])
    return lines


def _unless_default(field: attrs.Attribute[Any], i: int, names: dict[str, Any]) -> list[str]:
    """The statement that adds field ``i`` to ``data`` unless it equals its default (as cattrs'
    hooks compare: with ``!=``, a factory called anew; ``a{i}`` equals the field's value)."""
    default: Any = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        names[f"factory{i}"] = default.factory
        compared = f"factory{i}()"
    else:
        names[f"default{i}"] = default
        compared = f"default{i}"
    return [f"if a{i} != {compared}: data[{field.name!r}] = o{i}"]


def _data_value(kind: Any, var: str, names: dict[str, Any]) -> tuple[list[str], str] | None:
    """Statements that check ``var`` holds what reads back as ``kind``, and its data.

    The counterpart of :func:`_fast_value`: the value must be of the very type that path builds
    from the data, so that a reader gets an equal value back.
    """
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    simple = {str: "str", int: "int", bool: "bool"}
    if kind in simple:
        return [f"if type({var}) is not {simple[kind]}: raise Unusual"], var
    if kind is EDTFDate:  # str() of a date is its text, which must parse (made by hand?)
        names["EDTFDate"], names["parse_date"] = EDTFDate, parse_date
        return [f"if type({var}) is not EDTFDate or type({var}.text) is not str: raise Unusual",
                f"parse_date({var}.text)"], f"{var}.text"
    if origin is typing.Literal and all(type(a) is str for a in args):
        name = f"choices{len(names)}"
        names[name] = frozenset(args)
        return [f"if type({var}) is not str or {var} not in {name}: raise Unusual"], var
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return _optional(_data_value(next(a for a in args if a is not type(None)), var, names),
                         var)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _data_tuple(args[0], var, names)
    if origin is dict and args and args[0] is str and args[1] is Any:
        name = f"hook{len(names)}"  # values of any type: cattrs' own hook turns them to data
        names[name] = converter.get_unstructure_hook(kind)
        return _str_keys(var), f"{name}({var})"
    nested = _nested_data(kind, names)
    return None if nested is None else ([], f"{nested}({var})")


def _data_tuple(kind: Any, var: str, names: dict[str, Any]) -> tuple[list[str], str] | None:
    """:func:`_data_value` for ``tuple[kind, ...]``: a tuple (a reader builds one), as a list."""
    checks = [f"if type({var}) is not tuple: raise Unusual"]
    name = _nested_data(kind, names)  # a nested class: its function checks each item
    if name is None:
        item = _data_value(kind, "x", names)
        if item is None:
            return None
        each, name = _items(item, var, names)
        if name is None:
            return checks + each, var  # orjson writes a tuple as a list
    return checks, f"list(map({name}, {var}))"


def _nested_data(kind: Any, names: dict[str, Any]) -> str | None:
    """The name in ``names`` of the fast data function of a nested value class, if any."""
    if not (isinstance(kind, type) and attrs.has(kind) and not issubclass(kind, Event)):
        return None
    nested = _FAST_DATA[kind] if kind in _FAST_DATA else _fast_data_fn(kind)
    if nested is None:
        return None
    name = f"nested{len(names)}"
    names[name] = nested
    return name


def event_from_draft(obj: Any, *, where: str | None = None) -> Event:
    """Build an event from a draft: a JSON object with ``type``, optional ``id`` and the fields.

    Args:
        obj: the parsed JSON object.
        where: where the draft came from, for error messages (``"drafts.jsonl, line 4"``).

    Raises:
        InvalidEvent: the draft is not an object, has no or an unknown type, or a bad field.
    """
    if not isinstance(obj, dict):
        raise InvalidEvent(f"a draft must be a JSON object, not {type(obj).__name__}", where=where)
    fields = dict(obj)
    type_name = fields.pop("type", None)
    if not isinstance(type_name, str):
        raise InvalidEvent(
            'missing the event type, e.g. "type": "meeting"', field="type", where=where
        )
    return structure_event(_class_for(type_name, where=where), fields, where=where)


def event_to_draft(event: Event) -> dict[str, Any]:
    """The draft form of an event: ``type``, ``id`` (when set) and its data."""
    head: dict[str, Any] = {"type": event.type}
    if event.id is not None:
        head["id"] = event.id
    return head | event_data(event)


def _class_for(type_name: str, *, where: str | None) -> type[Event]:
    try:
        return _TYPES[type_name]
    except KeyError:
        known = ", ".join(sorted(_TYPES))
        raise UnknownEventType(
            f"unknown event type {type_name!r}; known types: {known} "
            "(register an application's own type with solidline.event_type)",
            field="type",
            where=where,
        ) from None


def _upcast(
    cls: type[Event], version: int, data: dict[str, Any], *, where: str | None
) -> dict[str, Any]:
    if not 1 <= version <= cls.version:
        raise InvalidEvent(
            f"{cls.type!r} version {version} is not known to this program (it knows up to "
            f"{cls.version}); upgrade solidline or the application that registers the type",
            field="v",
            where=where,
        )
    upcasters = _UPCASTERS[cls.type]
    for step in range(version, cls.version):
        data = upcasters[step](data)
    return data


def _first_fault(exc: BaseException, path: str = "") -> tuple[str, str]:
    """The path and message of the first leaf fault in a cattrs exception group."""
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        extra = ", ".join(sorted(exc.extra_fields))
        return _join(path, sorted(exc.extra_fields)[0]), f"unknown field(s) {extra}"
    if isinstance(exc, cattrs.ClassValidationError | cattrs.IterableValidationError):
        with_notes, without_notes = exc.group_exceptions()
        for inner, note in with_notes:
            name = getattr(note, "name", None)
            step = name if isinstance(name, str) else f"[{getattr(note, 'index', '?')}]"
            return _first_fault(inner, _join(path, step))
        for inner in without_notes:  # raised by the class itself (its validators)
            return _first_fault(inner, path)
    if isinstance(exc, InvalidEvent):
        return _join(path, exc.field) if exc.field else path, exc.reason
    if isinstance(exc, KeyError):
        return path, "is required but missing"
    return path, str(exc) or type(exc).__name__


def _join(path: str, step: str | None) -> str:
    if not step:
        return path
    if step.startswith("["):
        return path + step
    return f"{path}.{step}" if path else step


# -- the envelope ----------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Recorded:
    """An event as the log holds it: its place in the log, when it was recorded, and the chain.

    Attributes:
        seq: position in the log, from 1, without gaps.
        recorded_at: when the log recorded it (UTC; never decreasing along the log).
        prev: SHA-256 (hex) of the previous line's bytes.
        digest: SHA-256 (hex) of this line's bytes: the next line's ``prev``.
        event: the typed event, upcast to its current version.
    """

    seq: int
    recorded_at: datetime
    prev: str
    digest: str
    event: Event

    @property
    def id(self) -> str:
        """The event's id (always set on a recorded event)."""
        assert self.event.id is not None
        return self.event.id


def format_timestamp(moment: datetime) -> str:
    """``2026-11-23T14:00:00.123456Z``: fixed width, so that text order is time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@functools.lru_cache(maxsize=1024)  # the lines of a batch share one; a datetime is immutable
def parse_timestamp(text: str) -> datetime:
    """The inverse of :func:`format_timestamp`."""
    if len(text) != 27 or not text.endswith("Z"):
        raise ValueError(f"{text!r} is not a timestamp like 2026-11-23T14:00:00.123456Z")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def encode_line(
    *, seq: int, event_id: str, type_name: str, version: int, recorded_at: str, prev: str,
    more: int, data: bytes,
) -> bytes:
    """One log line, ``\\n``-terminated, keys in their fixed order.

    ``more`` (left out when 0) counts the lines of the same batch that follow this one, so that a
    reader or a recovery can tell a whole batch from a torn one.
    """
    head = orjson.dumps(
        {"seq": seq, "id": event_id, "type": type_name, "v": version,
         "recorded_at": recorded_at, "prev": prev}
    )
    more_part = b',"more":%d' % more if more else b""
    return head[:-1] + more_part + b',"data":' + data + b"}\n"


_ENVELOPE_TYPES: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("seq", int), ("id", str), ("type", str), ("v", int), ("recorded_at", str), ("prev", str),
    ("data", dict),
)


def check_envelope(line: Any) -> str | None:
    """The name of the first envelope field that is missing or of the wrong type, or None."""
    if type(line) is dict and _envelope_is_sound(line):
        return None
    if not isinstance(line, dict):
        return "line"
    for name, kind in _ENVELOPE_TYPES:
        value = line.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            return name
    more = line.get("more", 0)
    if not isinstance(more, int) or more < 0:
        return "more"
    return None


def _envelope_is_sound(line: dict[str, Any]) -> bool:
    """The common case of :func:`check_envelope` at a fraction of its cost (exact JSON types)."""
    try:
        sound = (type(line["seq"]) is int and type(line["id"]) is str
                 and type(line["type"]) is str and type(line["v"]) is int
                 and type(line["recorded_at"]) is str and type(line["prev"]) is str
                 and type(line["data"]) is dict)
    except KeyError:
        return False
    if "more" in line:
        more = line["more"]
        return sound and type(more) is int and more >= 0
    return sound
