"""Secret-bearing policy fields and the references that keep their values out of the file.

A field annotated :data:`Secret` (webhook and Slack URLs, HMAC secrets, integration keys,
token hashes, Apprise URLs) may hold, as its whole value, a reference resolved when the
policy is loaded:

* ``${NAME}``: the environment variable ``NAME`` (unset or empty is an error);
* ``file:/absolute/path``: the file's content, trailing whitespace stripped (Docker and
  Kubernetes secrets end in a newline); missing, unreadable or empty is an error.

Anything else is the literal value. References are honoured only in secret-bearing fields:
anywhere else a value written exactly like one is an error, so ``base_url: ${BASE_URL}``
never silently becomes that literal string. Errors name the reference, never a value.
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any


@dataclass(frozen=True)
class SecretBearing:
    """Marks a policy field whose value is a credential (``Secret``)."""


#: a policy string that is a credential: may be a ``${ENV}`` or ``file:/path`` reference
Secret = Annotated[str, SecretBearing()]

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_FILE_REF = re.compile(r"^file:(/.*)$", re.S)


class UnresolvedReference(ValueError):
    """A reference whose value cannot be read; the message names it, not a value."""


def is_reference(value: str) -> bool:
    """``value`` is written as a reference (``${NAME}`` or ``file:/path``)."""
    return bool(_ENV_REF.match(value) or _FILE_REF.match(value))


def is_secret_bearing(annotation: Any, metadata: list[Any] | tuple[Any, ...] = ()) -> bool:
    """The annotation (or a field's pydantic metadata) carries :class:`SecretBearing`."""
    found = list(metadata) + list(getattr(annotation, "__metadata__", ()))
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # Secret | None
        found += [m for a in typing.get_args(annotation) for m in getattr(a, "__metadata__", ())]
    return any(isinstance(m, SecretBearing) for m in found)


def resolve_reference(value: str, env: Mapping[str, str] | None = None) -> str:
    """The value ``value`` refers to, or ``value`` itself when it is no reference."""
    env = os.environ if env is None else env
    match = _ENV_REF.match(value)
    if match:
        name = match.group(1)
        if name not in env:
            raise UnresolvedReference(f"environment variable {name} is not set (from {value})")
        if not env[name].strip():
            raise UnresolvedReference(f"environment variable {name} is empty (from {value})")
        return env[name]
    match = _FILE_REF.match(value)
    if match:
        path = Path(match.group(1))
        try:
            content = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UnresolvedReference(f"secret file {path} does not exist") from None
        except IsADirectoryError:
            raise UnresolvedReference(f"secret file {path} is a directory") from None
        except UnicodeDecodeError:
            raise UnresolvedReference(f"secret file {path} is not UTF-8 text") from None
        except OSError as exc:
            raise UnresolvedReference(
                f"secret file {path} cannot be read: {exc.strerror or type(exc).__name__}"
            ) from None
        if not content.strip():
            raise UnresolvedReference(f"secret file {path} is empty")
        return content.rstrip()
    return value
