"""Typed settings, each declared once: type, default, unit, one line of meaning, the valid values.

A setting is a field of a frozen dataclass whose metadata holds a ``Spec``::

    ram: int = size("64M", "physical memory shared by all processes", lo=1)

That one line is everything the program knows about ``ram``: the typed
default (``67108864``, parsed from ``"64M"`` by the same code that parses a
user's value), the unit (bytes), the meaning, the bounds. From the
declarations come the Hydra schema (``vmexp.config.register_configs``), the
parsing and checking of a composed config into the engine's ``Settings``
(``parse_section``: every value parsed exactly once, every failure one line
that starts with the key), ``settings.json`` beside each run's metrics,
``python run.py --help`` and the README's knob table (``vmexp.docs``).
Components (policies, allocators, workload parts) declare their parameters
the same way (``vmexp.registry``).

Values arrive in two forms. *Raw* values are what a user writes in YAML or
on the command line: ``"64k"``, ``65536``, ``"10ms"``, ``0.01`` (a bare
number as a duration is seconds). *Typed* values are what the engine uses:
ints in bytes and nanoseconds. ``parse_value(..., typed=True)`` takes typed
values as they are (an int for a duration is nanoseconds), so that a
component built from settings is not parsed a second time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from vmexp.units import UnitError, format_duration, format_size, parse_duration, parse_size

__all__ = [
    "SPEC",
    "UNITS",
    "ConfigError",
    "Spec",
    "choice",
    "component",
    "custom",
    "declared",
    "duration",
    "durations",
    "flag",
    "fraction",
    "integer",
    "iter_specs",
    "names",
    "number",
    "open_section",
    "parse_section",
    "parse_value",
    "path",
    "section",
    "size",
    "spec_of",
    "text",
    "to_plain",
    "weights",
]

SPEC = "vmexp"

# The parameter classes of registered components -> (the key that names them, their name);
# filled by vmexp.registry, read when a component nested in a list is written out.
COMPONENTS: dict[type, tuple[str, str]] = {}

# The unit each kind of value is stored in (settings.json's "unit", the docs' unit column).
UNITS = {"size": "bytes", "duration": "ns", "fraction": "ratio", "durations": "ns"}
# How a kind is written, for --help and the README.
WRITTEN = {
    "size": "size",
    "duration": "duration",
    "int": "integer",
    "float": "number",
    "fraction": "fraction 0..1",
    "bool": "true/false",
    "str": "text",
    "path": "file path",
    "choice": "name",
    "durations": "list of durations",
    "names": "list of names",
    "weights": "mapping name: number",
}


class ConfigError(ValueError):
    """A configuration value that cannot run; the message starts with the key."""


_MISSING: Any = dataclasses.MISSING


@dataclass(frozen=True)
class Spec:
    """The declaration of one setting (see the module docstring).

    ``default`` is the value as a user writes it (``"64M"``), shown in the
    docs; the dataclass field holds it parsed. ``null`` is None when null is
    not allowed, else what null means (``"glibc's default"``). ``lo``/``hi``
    bound typed values (inclusive; ``strict`` makes ``lo`` exclusive), with
    ``lo_msg``/``hi_msg`` for a message of its own (``{text}`` is the value as
    written, ``{v!r}`` its repr). ``check`` returns a message for a value
    that is wrong for another reason. ``missing`` is the message for a
    required value left out. ``schema`` is the type Hydra checks at
    composition (sizes stay ``Any``: ``64k`` is text until parsed here).
    """

    kind: str
    default: Any
    doc: str
    lo: int | float | None = None
    hi: int | float | None = None
    strict: bool = False
    choices: tuple[str, ...] = ()
    null: str | None = None
    lo_msg: str = ""
    hi_msg: str = ""
    missing: str = ""
    check: Callable[[Any], str | None] | None = None
    parse: Callable[[Any, str, type[Exception]], Any] | None = None
    valid: str = ""
    schema: Any = Any
    section: type | None = None
    registry: Any = None
    group: bool = False
    key: str = ""
    unit_override: str | None = None
    derived: bool = False
    schema_default: Any = None
    inline: bool = False

    @property
    def unit(self) -> str:
        """The unit of the typed value: bytes, ns, ratio, or "" for a plain number or a name."""
        if self.unit_override is not None:
            return self.unit_override
        return UNITS.get(self.kind, "")

    def written_default(self) -> str:
        """The default as the docs show it (``64M``, ``null``, ``[]``)."""
        d = self.default
        if d is None:
            return "null"
        if isinstance(d, bool):
            return "true" if d else "false"
        if isinstance(d, list | tuple):
            return "[" + ", ".join(str(x) for x in d) + "]"
        if isinstance(d, dict):
            return "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"
        return str(d)

    def valid_text(self) -> str:
        """The valid values in words, for the docs."""
        if self.valid:
            return self.valid
        if self.choices:
            return " | ".join(self.choices)
        parts = []
        fmt = _fmt_bound(self.kind)
        if self.lo is not None and self.hi is not None:
            parts.append(f"{fmt(self.lo)} .. {fmt(self.hi)}")
        elif self.lo is not None:
            if self.kind in ("duration", "size", "int") and self.lo == 1:
                parts.append("> 0")
            else:
                parts.append(f"{'>' if self.strict else '≥'} {fmt(self.lo)}")
        elif self.hi is not None:
            parts.append(f"≤ {fmt(self.hi)}")
        return ", ".join(parts)


def _fmt_bound(kind: str) -> Callable[[int | float], str]:
    if kind == "size":
        return lambda v: format_size(int(v)).replace(" ", "\u00a0")
    if kind == "duration":
        return lambda v: format_duration(v).replace(" ", "\u00a0")
    return lambda v: f"{v:g}"


def _field(spec: Spec, *, typed_default: Any = _MISSING) -> Any:
    if typed_default is _MISSING:
        typed_default = _typed_default(spec)
    meta = {SPEC: spec}
    if isinstance(typed_default, list | dict):
        value = typed_default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=typed_default, metadata=meta)


def _typed_default(spec: Spec) -> Any:
    if spec.default is None or spec.kind in ("section", "open", "component") or spec.derived:
        return None
    return parse_value(spec, spec.default, "<default>", ConfigError)


# ------------------------------------------------------------------ the declaration helpers


def size(default: str | int | None, doc: str, **kw: Any) -> Any:
    """A number of bytes, written with binary units: 4096, 64k, 2M, 1G (kB and KiB are KiB too)."""
    return _field(Spec("size", default, doc, **kw))


def duration(default: str | int | float | None, doc: str, **kw: Any) -> Any:
    """A simulated (or wall-clock) time, written 250ns, 10us, 5ms, 2s; a bare number is seconds."""
    return _field(Spec("duration", default, doc, **kw))


def integer(default: int | None, doc: str, **kw: Any) -> Any:
    kw.setdefault("schema", Optional[int] if kw.get("null") is not None or default is None else int)  # noqa: UP045
    return _field(Spec("int", default, doc, **kw))


def number(default: float | None, doc: str, **kw: Any) -> Any:
    return _field(Spec("float", default, doc, **kw))


def fraction(default: float | None, doc: str, **kw: Any) -> Any:
    return _field(Spec("fraction", default, doc, **kw))


def flag(default: bool, doc: str, **kw: Any) -> Any:
    """true or false. ``Any`` for Hydra: OmegaConf's bool takes any integer (``figures=2`` was true) and
    yes/on/y as true; the value is checked here instead, where only true and false pass."""
    kw.setdefault("schema", Any)
    return _field(Spec("bool", default, doc, **kw))


def text(default: str | None, doc: str, **kw: Any) -> Any:
    kw.setdefault("schema", Optional[str] if kw.get("null") is not None or default is None else str)  # noqa: UP045
    return _field(Spec("str", default, doc, **kw))


def path(default: str | None, doc: str, **kw: Any) -> Any:
    """A file name; ``~`` is expanded."""
    return _field(Spec("path", default, doc, **kw))


def choice(default: str, doc: str, choices: tuple[str, ...], **kw: Any) -> Any:
    kw.setdefault("schema", str)
    return _field(Spec("choice", default, doc, choices=choices, **kw))


def durations(default: list[Any], doc: str, **kw: Any) -> Any:
    """A list of durations; the typed value is a sorted tuple of distinct nanoseconds."""
    kw.setdefault("schema", list[Any])
    spec = Spec("durations", default, doc, **kw)
    return dataclasses.field(
        default=parse_value(spec, default, "<default>", ConfigError), metadata={SPEC: spec}
    )


def names(default: list[str], doc: str, **kw: Any) -> Any:
    kw.setdefault("schema", list[str])
    spec = Spec("names", default, doc, **kw)
    return dataclasses.field(
        default=parse_value(spec, default, "<default>", ConfigError), metadata={SPEC: spec}
    )


def weights(doc: str, **kw: Any) -> Any:
    """A mapping of names to numbers (``objective``)."""
    kw.setdefault("schema", dict[str, float])
    return _field(Spec("weights", {}, doc, **kw), typed_default={})


def custom(
    default: Any,
    doc: str,
    parse: Callable[[Any, str, type[Exception]], Any],
    *,
    typed_default: Any = None,
    **kw: Any,
) -> Any:
    """A value with a parser of its own: ``parse(value, key, error)`` returns it typed or raises ``error``."""
    return _field(Spec("custom", default, doc, parse=parse, **kw), typed_default=typed_default)


def section(cls: type, doc: str, *, key: str = "", group: bool = False) -> Any:
    """A nested group of settings (another declared dataclass); ``key`` names it in the config if different."""
    return dataclasses.field(
        default_factory=cls, metadata={SPEC: Spec("section", None, doc, section=cls, key=key, group=group)}
    )


def open_section(
    doc: str, registry: Any, *, typed_default: Any = None, schema_default: Any = None, group: bool = False
) -> Any:
    """A section whose keys a component declares (chosen by name from ``registry``).

    The Hydra schema leaves it open (``schema_default``: {} or null);
    ``vmexp.config.validate`` checks it against the chosen component.
    """
    spec = Spec("open", None, doc, registry=registry, group=group, schema_default=schema_default)
    if isinstance(typed_default, dict):
        return dataclasses.field(default_factory=dict, metadata={SPEC: spec})
    return dataclasses.field(default=typed_default, metadata={SPEC: spec})


def component(default: Mapping[str, Any] | None, doc: str, registry: Any, **kw: Any) -> Any:
    """A mapping that names a component (``{dist: lognormal, median: 1k, ...}``) and its parameters."""
    return _field(
        Spec("component", dict(default) if default else None, doc, registry=registry, **kw),
        typed_default=None,
    )


# ------------------------------------------------------------------ reading declarations


def spec_of(f: dataclasses.Field[Any]) -> Spec | None:
    spec = f.metadata.get(SPEC)
    return spec if isinstance(spec, Spec) else None


def declared(cls: type, *, derived: bool = False) -> list[tuple[str, dataclasses.Field[Any], Spec]]:
    """(config name, field, spec) of every declared field of ``cls``.

    Fields without a spec are the engine's own; ``derived`` ones (computed
    from another setting, like the swap device's latency) are left out
    unless asked for: they are not keys a user sets.
    """
    out = []
    for f in dataclasses.fields(cls):
        spec = spec_of(f)
        if spec is not None and (derived or not spec.derived):
            out.append((spec.key or f.name, f, spec))
    return out


def iter_specs(cls: type, prefix: str = "") -> Iterator[tuple[str, Spec]]:
    """Every declared key below ``cls`` as (dotted config key, spec), sections expanded."""
    for name, _f, spec in declared(cls):
        key = f"{prefix}{name}"
        yield key, spec
        if spec.kind == "section" and spec.section is not None:
            yield from iter_specs(spec.section, f"{key}.")


# ------------------------------------------------------------------ parsing


def _shown(v: Any) -> str:
    return v if isinstance(v, str) else repr(v)


def _fail(error: type[Exception], key: str, msg: str) -> Exception:
    return error(f"{key}: {msg}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def parse_value(
    spec: Spec, value: Any, key: str, error: type[Exception] = ConfigError, *, typed: bool = False
) -> Any:
    """``value`` checked and typed as ``spec`` declares; ``error`` names ``key`` otherwise."""
    if value is None:
        if spec.null is not None:
            return None
        if spec.missing:
            raise _fail(error, key, spec.missing)
    kind = spec.kind
    v: Any
    if kind == "size":
        if value is None:
            raise _fail(error, key, "a size is required (such as 4096, 64k or 2M)")
        if typed and _is_int(value):
            v = value
        else:
            try:
                v = parse_size(value)
            except UnitError as e:
                raise _fail(error, key, str(e)) from None
    elif kind == "duration":
        if typed and _is_int(value):
            v = value
        else:
            try:
                v = parse_duration(value)
            except UnitError as e:
                raise _fail(error, key, str(e)) from None
    elif kind == "int":
        if not _is_int(value):
            raise _fail(error, key, _int_msg(spec, value))
        v = value
    elif kind == "float":
        if not _is_number(value):
            raise _fail(error, key, _float_msg(spec, value))
        v = float(value)
    elif kind == "fraction":
        if not _is_number(value) or not 0.0 <= value <= 1.0:
            raise _fail(error, key, f"must be a fraction between 0 and 1, got {value!r}")
        v = float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _fail(error, key, f"expected true or false, got {value!r}")
        v = value
    elif kind == "str":
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise _fail(error, key, f"expected text, got {value!r}")
        v = str(value)
    elif kind == "path":
        if not isinstance(value, str) or not value:
            raise _fail(error, key, f"expected a file path, got {value!r}")
        v = str(Path(value).expanduser())
    elif kind == "choice":
        if value not in spec.choices:
            raise _fail(error, key, f"{_shown(value)!r} is not one of {', '.join(spec.choices)}")
        v = str(value)
    elif kind == "durations":
        if not isinstance(value, list | tuple):
            raise _fail(error, key, f"expected a list of durations such as [0.5s, 1s], got {value!r}")
        out = []
        for i, x in enumerate(value):
            out.append(
                x
                if typed and _is_int(x)
                else parse_value(Spec("duration", None, ""), x, f"{key}[{i}]", error)
            )
        v = tuple(sorted(set(out)))  # a time given twice is one snapshot, not the same rows twice
    elif kind == "names":
        if not isinstance(value, list | tuple) or not all(isinstance(x, str) for x in value):
            raise _fail(error, key, f"expected a list of names, got {value!r}")
        v = tuple(value)
    elif kind == "weights":
        if not isinstance(value, Mapping):
            raise _fail(error, key, f"expected a mapping of names to numbers, got {value!r}")
        v = {}
        for k, w in value.items():
            if not _is_number(w):
                raise _fail(error, f"{key}.{k}", f"must be a number, got {w!r}")
            v[str(k)] = float(w)
            msg = spec.check(str(k)) if spec.check is not None and key != "<default>" else None
            if msg:
                raise _fail(error, f"{key}.{k}", msg)
        return v
    elif kind == "custom":
        assert spec.parse is not None
        v = spec.parse(value, key, error)
    elif kind == "component":
        v = spec.registry.parse(value if value is not None else (spec.default or {}), key, typed=typed)
    else:
        raise TypeError(f"{key}: a setting of kind {kind} cannot be parsed")
    _bounds(spec, v, value, key, error)
    if spec.check is not None and key != "<default>":
        msg = spec.check(v)
        if msg:
            raise _fail(error, key, msg.format(v=value, text=_shown(value)))
    return v


def _int_msg(spec: Spec, value: Any) -> str:
    # Bounds in full: ':g' wrote mallopt's INT_MAX as 2.14748e+09, a number nobody can type back.
    lo, hi = (f"{b:g}" if isinstance(b, float) else b for b in (spec.lo, spec.hi))
    if spec.lo is not None and spec.hi is not None:
        return f"must be an integer between {lo} and {hi}, got {value!r}"
    if spec.lo is not None:
        return f"must be an integer >= {lo}, got {value!r}"
    return f"must be an integer, got {value!r}"


def _float_msg(spec: Spec, value: Any) -> str:
    if spec.lo is not None:
        return f"must be a number {'>' if spec.strict else '>='} {spec.lo:g}, got {value!r}"
    return f"must be a number, got {value!r}"


def _bounds(spec: Spec, v: Any, raw: Any, key: str, error: type[Exception]) -> None:
    if v is None or not isinstance(v, int | float) or isinstance(v, bool):
        return
    low = spec.lo is not None and (v < spec.lo or (spec.strict and v == spec.lo))
    high = spec.hi is not None and v > spec.hi
    if not (low or high):
        return
    fmt = {"text": _shown(raw), "v": raw, "lo": spec.lo, "hi": spec.hi}
    if low and spec.lo_msg:
        raise _fail(error, key, spec.lo_msg.format(**fmt))
    if high and spec.hi_msg:
        raise _fail(error, key, spec.hi_msg.format(**fmt))
    kind = spec.kind
    if kind == "int":
        raise _fail(error, key, _int_msg(spec, raw))
    if kind == "float":
        if high:
            raise _fail(error, key, f"must be a number <= {spec.hi:g}, got {raw!r}")
        raise _fail(error, key, _float_msg(spec, raw))
    if kind == "size":
        if high:
            raise _fail(error, key, f"{_shown(raw)} is larger than {format_size(int(spec.hi or 0))}")
        raise _fail(error, key, f"must be at least {spec.lo} bytes, got {raw!r}")
    if kind == "duration":
        if high:
            raise _fail(error, key, f"{_shown(raw)} is longer than {format_duration(spec.hi or 0)}")
        if spec.lo == 1:
            raise _fail(error, key, "must be greater than 0")
        raise _fail(error, key, f"must be at least {format_duration(spec.lo or 0)}, got {_shown(raw)}")
    raise _fail(error, key, f"{_shown(raw)} is out of range ({spec.valid_text()})")


def parse_section(
    cls: type,
    values: Mapping[str, Any],
    where: str,
    error: type[Exception] = ConfigError,
    *,
    what: str = "",
    ignore: frozenset[str] = frozenset(),
    typed: bool = False,
) -> Any:
    """An instance of the declared dataclass ``cls`` from a mapping of raw values.

    A key ``cls`` does not declare is an error that lists the valid ones
    (``what`` names the thing, e.g. ``policy ws``); a key left out takes
    its default; a nested section is parsed the same way. A ``check(where)``
    method of ``cls`` runs last, for what only several values together say.
    """
    fields = declared(cls)
    known = {name for name, _f, _s in fields}
    unknown = sorted((str(k) for k in values if str(k) not in known and str(k) not in ignore), key=str)
    if unknown:
        valid = ", ".join(sorted(known)) or "none"
        raise _fail(error, _join(where, unknown[0]), f"not a parameter of {what or where} (valid: {valid})")
    kwargs: dict[str, Any] = {}
    for name, f, spec in fields:
        key = _join(where, name)
        if name in values:
            raw = values[name]
        elif spec.kind == "section":
            raw = {}
        elif spec.kind == "component":
            raw = spec.default
        elif spec.default is None and spec.null is None and spec.kind != "open":
            raw = None  # required: the kind's own message says what is missing
        else:
            continue  # the field's typed default
        if spec.kind == "section" and spec.section is not None:
            if raw is None:
                raw = {}
            if not isinstance(raw, Mapping):
                raise _fail(error, key, f"expected a mapping of keys, got {raw!r}")
            kwargs[f.name] = parse_section(
                spec.section, raw, key, error, what=f"{what} {name}".strip() if what else key, typed=typed
            )
        elif spec.kind == "open":
            kwargs[f.name] = raw
        else:
            kwargs[f.name] = parse_value(spec, raw, key, error, typed=typed)
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check(where)
    return obj


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


# ------------------------------------------------------------------ writing


def to_plain(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any, str, str | None]]:
    """(dotted config key, typed value, unit, what null means) of every declared value of ``obj``.

    What ``settings.json`` holds: the resolved values the run used, in the
    units the engine uses, keyed as a user would write them.
    """
    if not dataclasses.is_dataclass(obj):
        return
    for name, f, spec in declared(type(obj), derived=True):
        v = getattr(obj, f.name)
        key = f"{prefix}{name}"
        if spec.kind == "section":
            yield from to_plain(v, f"{key}.")
        elif spec.kind == "open":
            continue  # a component's section: its registry writes it (vmexp.config.settings_json)
        elif spec.kind == "component":
            yield from _component_plain(v, key.rpartition(".")[0] if spec.inline else key, spec)
        elif isinstance(v, tuple) and any(dataclasses.is_dataclass(x) for x in v):
            for i, item in enumerate(v):
                named = COMPONENTS.get(type(item))
                if named is not None:
                    yield f"{key}.{i}.{named[0]}", named[1], "", None
                yield from to_plain(item, f"{key}.{i}.")
        else:
            yield key, _jsonable(v), spec.unit, spec.null


def _component_plain(v: Any, key: str, spec: Spec) -> Iterator[tuple[str, Any, str, str | None]]:
    if v is None:
        return
    reg = spec.registry
    if reg is not None and hasattr(reg, "plain"):
        yield from reg.plain(v, key)
    elif dataclasses.is_dataclass(v):
        yield from to_plain(v, f"{key}.")


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v
