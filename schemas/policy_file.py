"""Load the YAML policy file into :class:`schemas.policy.Policy`, failing with every error.

A broken policy must stop the process before anything starts, and the person fixing it
should see every problem at once, each as ``file:line: field.path: message`` (the form
editors and CI logs turn into links). To get there:

* the YAML is composed into a node tree first, which gives the line of every mapping key
  and sequence item and reveals duplicate keys (which a plain load silently drops);
* pydantic errors carry a location tuple, turned into a dotted path and looked up;
* the cross-reference check of :class:`Policy` reports ``path: message`` parts joined by
  ``"; "``; each part is mapped to its own line;
* when some fields are invalid, pydantic never runs the cross-reference check, so it is
  run again on the valid part of the file (broken items replaced by inert stand-ins) and
  those errors are listed too;
* ``${ENV}`` and ``file:/path`` references in secret-bearing fields are resolved before
  validation (:mod:`schemas.policy_secrets`); one that cannot be is an error on its line,
  and no error ever quotes a resolved value.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from schemas.policy import Policy
from schemas.policy_secrets import (
    UnresolvedReference,
    is_reference,
    is_secret_bearing,
    resolve_reference,
)

Loc = tuple[str, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
#: top-level fields that are not lists of named items; an error in one leaves the rest usable
_STANDALONE = ("base_url", "review", "slack")
#: how to write values whose parse errors are otherwise cryptic
_HINTS = {
    "time_parsing": '; write times of day as "HH:MM", e.g. "09:00"',
    "time_type": '; write times of day as "HH:MM", e.g. "09:00"',
    "time_delta_parsing": "; write durations like 30s, 5m, 1h30m, 2d",
    "time_delta_type": "; write durations like 30s, 5m, 1h30m, 2d",
    "datetime_parsing": "; write instants like 2026-03-02T09:00:00+01:00",
    "timezone_aware": "; add a UTC offset, e.g. 2026-03-02T09:00:00+01:00",
}


class PolicyError(Exception):
    """The policy file cannot be used; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str], source: str = "<policy>") -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__(policy_errors_text(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors, self.source))


def policy_errors_text(err: PolicyError) -> str:
    """A header line and one error per line, ready to print."""
    count = len(err.errors)
    noun = "error" if count == 1 else "errors"
    return "\n".join([f"{err.source}: invalid policy ({count} {noun})", *err.errors])


def load_policy(path: Path | str, env: Mapping[str, str] | None = None) -> Policy:
    """Read and validate the policy file at ``path``; references read ``env`` (default:
    the process environment) and the files they name."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(
            [
                f"{source}: policy file not found (looked for {path.resolve()}); set "
                "INCIDENTFLOW_POLICY or pass --policy (examples/policy.yaml is a complete "
                "example)"
            ],
            source,
        ) from None
    except IsADirectoryError:
        raise PolicyError([f"{source}: is a directory, not a policy file"], source) from None
    except UnicodeDecodeError as exc:
        raise PolicyError([f"{source}: not UTF-8 text ({exc.reason})"], source) from None
    except OSError as exc:
        raise PolicyError([f"{source}: cannot read: {exc.strerror or exc}"], source) from None
    return parse_policy(text, source, env)


def parse_policy(
    text: str, source: str = "<policy>", env: Mapping[str, str] | None = None
) -> Policy:
    """Validate policy YAML ``text``; ``source`` names it in error messages."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        raise PolicyError([_yaml_error(exc, source)], source) from None
    finally:
        loader.dispose()
    if root is None or data is None:
        raise PolicyError([f"{source}:1: the policy file is empty"], source)

    lines: dict[Loc, int] = {(): root.start_mark.line + 1}
    problems: list[tuple[int, str]] = []
    _index(root, (), lines, problems, source, set())

    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        problems.append(
            (
                lines[()],
                f"{source}:{lines[()]}: the policy file must be a mapping of sections "
                f"(users, services, ...), got {kind}",
            )
        )
        raise PolicyError(_ordered(problems), source)

    report = _Reporter(source, lines, problems)
    refs = _References(env)
    data = refs.resolve(Policy, data, (), secret=False)
    for loc, message in refs.errors:
        report.add(loc, message)
    policy: Policy | None = None
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        field_errors = [e for e in exc.errors(include_url=False) if e["loc"]]
        for e in exc.errors(include_url=False):
            loc = _loc(e["loc"])
            if not e["loc"]:
                report.references(_message(e))
            elif not refs.covers(loc, refs.unresolved):  # reported as unresolved already
                report.pydantic(e, quote_input=not refs.covers(loc, refs.resolved))
        if field_errors:
            for loc, message in _references_of_valid_part(data, field_errors):
                report.add(loc, message)
    for loc, message in _extra_checks(data):
        report.add(loc, message)
    if problems:
        raise PolicyError(_ordered(problems), source)
    assert policy is not None
    return policy


# -- YAML ---------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader without two YAML 1.1 surprises. Base-60 numbers: ``handoff: 9:00`` must
    stay the string ``"9:00"``, not the integer 540 (which pydantic reads as 00:09:00).
    Timestamps: dates stay strings for pydantic to parse, so ``holidays: [2025-12-25]``
    is valid although that field holds ISO strings."""


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx) for tag, rx in resolvers if not tag.endswith((":int", ":float", ":timestamp"))
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml_error(exc: yaml.YAMLError, source: str) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        line = exc.problem_mark.line + 1
        message = exc.problem or "invalid YAML"
        if exc.context:
            where = ""
            if exc.context_mark is not None and exc.context_mark.line + 1 != line:
                where = f" on line {exc.context_mark.line + 1}"
            message = f"{message} ({exc.context}{where})"
        label = "YAML error" if isinstance(exc, ConstructorError) else "YAML syntax error"
        return f"{source}:{line}: {label}: {message}"
    return f"{source}:1: YAML error: {exc}"


def _index(
    node: Node,
    path: Loc,
    lines: dict[Loc, int],
    problems: list[tuple[int, str]],
    source: str,
    active: set[int],
) -> None:
    """Record the line of every key and item under ``path``; report duplicate keys."""
    if id(node) in active:  # a recursive alias
        return
    active.add(id(node))
    if isinstance(node, MappingNode):
        seen: dict[str, int] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append(value_node)
                continue
            key = key_node.value if isinstance(key_node, ScalarNode) else f"<{key_node.tag}>"
            line = key_node.start_mark.line + 1
            child = (*path, key)
            if key in seen:
                problems.append(
                    (
                        line,
                        _format(
                            source,
                            line,
                            child,
                            f"duplicate key {key!r} (first on line "
                            f"{seen[key]}; YAML would silently keep only the last)",
                        ),
                    )
                )
                # the last copy is the one loaded: point its path at the last copy's lines
                for known in [k for k in lines if k[: len(child)] == child]:
                    del lines[known]
                lines[child] = line
            else:
                seen[key] = line
                lines.setdefault(child, line)
            _index(value_node, child, lines, problems, source, active)
        for value_node in merged:  # keys from ``<<: *anchor`` never beat the mapping's own
            targets = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for target in targets:
                _index(target, path, lines, problems, source, active)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, str(i))
            lines.setdefault(child, item.start_mark.line + 1)
            _index(item, child, lines, problems, source, active)
    active.discard(id(node))


# -- error reporting ----------------------------------------------------------------------

_REF_PART = re.compile(r"^([A-Za-z_]\w*(?:\.[\w-]+)*): (.*)$", re.S)
_REF_SPLIT = re.compile(r"; (?=[A-Za-z_]\w*(?:\.[\w-]+)*: )")


class _Reporter:
    def __init__(self, source: str, lines: dict[Loc, int], problems: list[tuple[int, str]]):
        self.source = source
        self.lines = lines
        self.problems = problems
        self._seen: set[str] = set()

    def line_of(self, loc: Loc) -> int:
        """Line of ``loc``, else of its closest parent that exists in the file."""
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return 1

    def add(self, loc: Loc, message: str) -> None:
        line = self.line_of(loc)
        text = _format(self.source, line, loc, message)
        if text not in self._seen:
            self._seen.add(text)
            self.problems.append((line, text))

    def pydantic(self, error: Any, quote_input: bool = True) -> None:
        loc = _loc(error["loc"])
        self.add(loc, _message(error, quote_input))

    def references(self, message: str) -> None:
        """Split the cross-reference check's ``path: message; path: message`` report."""
        for loc, part in _split_references(message):
            self.add(loc, part)


def _split_references(message: str) -> Iterator[tuple[Loc, str]]:
    for part in _REF_SPLIT.split(message):
        match = _REF_PART.match(part)
        if match:
            yield tuple(match.group(1).split(".")), match.group(2)
        else:
            yield (), part


def _format(source: str, line: int, loc: Loc, message: str) -> str:
    path = ".".join(loc)
    return f"{source}:{line}: {path}: {message}" if path else f"{source}:{line}: {message}"


def _ordered(problems: list[tuple[int, str]]) -> list[str]:
    return [text for _, text in sorted(problems, key=lambda p: p[0])]


def _loc(raw: tuple[int | str, ...]) -> Loc:
    """Pydantic location -> path parts, without markers such as ``[key]``."""
    return tuple(str(p) for p in raw if not (isinstance(p, str) and p.startswith("[")))


def _message(error: Any, quote_input: bool = True) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return _unknown_field(_loc(error["loc"]))
    message: str = error["msg"]
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind != "value_error" and not kind.startswith("assertion"):
        message = message[:1].lower() + message[1:]
        value = error.get("input")
        if not quote_input:
            pass  # a value read from a secret reference is never shown
        elif isinstance(value, str | int | float | bool | date) or value is None:
            message += f" (got {value!r})"
        message += _HINTS.get(kind, "")
    return message


def _unknown_field(loc: Loc) -> str:
    name = loc[-1] if loc else "?"
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown field {name!r}"
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        return f"unknown field {name!r} (did you mean {close[0]!r}?)"
    return f"unknown field {name!r}; allowed: {', '.join(allowed)}"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The policy model that the mapping at ``loc`` is validated as, if one is."""
    annotation: Any = Policy
    parts = list(loc)
    while True:
        annotation = _unwrap_optional(annotation)
        origin = typing.get_origin(annotation)
        if origin in (list, dict):
            if not parts:
                return None
            parts.pop(0)
            annotation = typing.get_args(annotation)[-1]
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if not parts:
                return annotation
            field = annotation.model_fields.get(parts.pop(0))
            if field is None:
                return None
            annotation = field.annotation
            continue
        return None


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


# -- secret references ---------------------------------------------------------------------


class _References:
    """Resolves the references of a policy document, remembering where: errors for the
    ones that cannot be resolved, and the places of resolved values, whose pydantic
    errors must not quote them."""

    def __init__(self, env: Mapping[str, str] | None) -> None:
        self.env = env
        self.errors: list[tuple[Loc, str]] = []
        self.resolved: set[Loc] = set()
        self.unresolved: set[Loc] = set()

    @staticmethod
    def covers(loc: Loc, places: set[Loc]) -> bool:
        return any(loc[:n] in places for n in range(len(loc) + 1))

    def resolve(self, annotation: Any, raw: Any, loc: Loc, *, secret: bool) -> Any:
        """A copy of ``raw`` (validated later as ``annotation``) with references resolved."""
        annotation = _unwrap_optional(annotation)
        secret = secret or is_secret_bearing(annotation)
        if isinstance(raw, str):
            return self._string(raw, loc, secret)
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if isinstance(raw, list):
            item = args[0] if origin is list and args else Any
            return [self.resolve(item, v, (*loc, str(i)), secret=secret) for i, v in enumerate(raw)]
        if not isinstance(raw, dict):
            return raw
        if origin is dict and args:
            return {
                k: self.resolve(args[1], v, (*loc, str(k)), secret=secret) for k, v in raw.items()
            }
        fields = (
            annotation.model_fields
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else {}
        )
        resolved: dict[Any, Any] = {}
        for key, value in raw.items():
            info = fields.get(key) if isinstance(key, str) else None
            if info is None:
                resolved[key] = self.resolve(Any, value, (*loc, str(key)), secret=secret)
            else:
                marked = is_secret_bearing(info.annotation, info.metadata)
                resolved[key] = self.resolve(
                    info.annotation, value, (*loc, key), secret=secret or marked
                )
        return resolved

    def _string(self, raw: str, loc: Loc, secret: bool) -> str:
        if not is_reference(raw):
            return raw
        if not secret:
            self.errors.append(
                (
                    loc,
                    f"{raw!r} is written as a secret reference, but references are resolved "
                    "only in secret-bearing fields (docs/deploy.md lists them)",
                )
            )
            return raw
        try:
            value = resolve_reference(raw, self.env)
        except UnresolvedReference as exc:
            self.errors.append((loc, f"unresolved reference: {exc}"))
            self.unresolved.add(loc)
            return f"\0unresolved:{'.'.join(loc)}"  # unique: no false duplicate-key error
        self.resolved.add(loc)
        return value


# -- the cross-reference check on a partly valid file -------------------------------------


def _references_of_valid_part(
    data: dict[str, Any], field_errors: list[Any]
) -> list[tuple[Loc, str]]:
    """Cross-reference errors of the file with its invalid values taken out.

    The policy is rebuilt value by value: whatever validates is kept, whatever does not is
    replaced by an inert stand-in (an empty list, an empty string). Items keep their names
    where they have usable ones, so references to them still resolve and list indexes do
    not shift. Errors under a location pydantic already reported are dropped. A top-level
    section broken as a whole (not a list, missing) would make every reference into it look
    dangling, so then the check is skipped.
    """
    broken: list[Loc] = []
    for error in field_errors:
        loc = _loc(error["loc"])
        if len(loc) == 1 and loc[0] not in _STANDALONE and error["type"] != "extra_forbidden":
            return []
        broken.append(loc)
    partial = _lenient(Policy, data)
    # the model's own check, so the rules live in one place; via __dict__ because
    # pydantic's decorator proxy hides the plain function from type checkers
    check: Callable[[Policy], object] = Policy.__dict__["_references"]
    try:
        check(partial)
    except ValueError as exc:
        return [
            (loc, message)
            for loc, message in _split_references(str(exc))
            if not any(loc[: len(b)] == b for b in broken)
        ]
    except (AttributeError, KeyError, TypeError):  # a stand-in the check could not read
        return []
    return []


def _lenient(annotation: Any, raw: Any) -> Any:
    """``raw`` validated as ``annotation``; where that fails, built piece by piece from the
    parts that do validate, with inert values for the parts that do not."""
    try:
        return TypeAdapter(annotation).validate_python(raw)
    except ValidationError:
        pass
    annotation = _unwrap_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is list and isinstance(raw, list):
        (item_type,) = typing.get_args(annotation)
        return [_lenient(item_type, item) for item in raw]
    if origin is dict and isinstance(raw, dict):
        key_type, value_type = typing.get_args(annotation)
        entries: dict[Any, Any] = {}
        for key, value in raw.items():
            try:
                parsed = TypeAdapter(key_type).validate_python(key)
            except ValidationError:
                continue  # reported already
            entries[parsed] = _lenient(value_type, value)
        return entries
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        fields = annotation.model_fields
        given = raw if isinstance(raw, dict) else {}
        values: dict[str, Any] = {}
        for name, info in fields.items():
            if name in given:
                values[name] = _lenient(info.annotation, given[name])
            elif info.is_required():
                values[name] = _inert(info.annotation)
        if "name" in fields and not (isinstance(values.get("name"), str) and values["name"]):
            # ``users: [alice]`` (no mapping) still defines alice for the reference check
            values["name"] = raw if isinstance(raw, str) and raw else f"\0invalid-{id(raw)}"
        return annotation.model_construct(**values)
    return _inert(annotation)


def _inert(annotation: Any) -> Any:
    """A value of ``annotation`` that the reference check reads without finding anything."""
    if _unwrap_optional(annotation) is not annotation:
        return None
    origin = typing.get_origin(annotation)
    if origin is list:
        return []
    if origin is dict:
        return {}
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return next(iter(annotation))
        if issubclass(annotation, BaseModel):
            return _lenient(annotation, {})
        if issubclass(annotation, str | bool | int | float):
            return annotation()
    return None


# -- checks the models leave to the loader ------------------------------------------------


def _extra_checks(data: dict[str, Any]) -> Iterator[tuple[Loc, str]]:
    """Regexes that compile and holidays that are dates: both would otherwise only fail
    when the first alert arrives or the first review is scheduled."""
    rules = data.get("classification")
    if isinstance(rules, list):
        for i, rule in enumerate(rules):
            match = rule.get("match") if isinstance(rule, dict) else None
            if not isinstance(match, dict):
                continue
            for label, pattern in match.items():
                if not isinstance(pattern, str):
                    continue
                try:
                    re.compile(pattern)
                except re.error as exc:
                    yield (
                        ("classification", str(i), "match", str(label)),
                        f"invalid regular expression {pattern!r}: {exc}",
                    )
    review = data.get("review")
    holidays = review.get("holidays") if isinstance(review, dict) else None
    if isinstance(holidays, list):
        for j, value in enumerate(holidays):
            if isinstance(value, date):
                continue
            try:
                date.fromisoformat(str(value).strip())
            except ValueError:
                yield (("review", "holidays", str(j)), f"not a date (YYYY-MM-DD): {value!r}")
