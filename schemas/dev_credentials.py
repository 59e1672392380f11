"""The development credentials everyone can read (examples/policy.yaml, the README), and
which entries of a policy still hold one.

A production API or worker refuses to start while any entry is listed here: whoever read
the example could otherwise send alerts, acknowledge incidents or forge signed webhooks.
``incidentflow dev`` runs with them on purpose. tests/test_dev_credentials.py checks that
every credential in examples/policy.yaml is in these tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from schemas.policy import Policy
from schemas.tokens import hash_token

#: the API tokens examples/policy.yaml stores the hashes of (README: "Try it")
DEV_TOKENS: Final = ("dev-admin-token", "dev-responder-token")

#: the integration keys of examples/policy.yaml's services
DEV_INTEGRATION_KEYS: Final = (
    "1aafa24382140bee85833721f468d480",
    "e00ebbc5b99726c399a28753cf67218c",
    "84e8120cf946170f1719825f1b871eba",
    "bc6b0a3aa4da0529facfe7fa7d6ee394",
)

#: the HMAC secrets of examples/policy.yaml (its signed webhook channel)
DEV_SECRETS: Final = ("dev-only-webhook-secret-change-me",)

_DEV_TOKEN_HASHES: Final = frozenset(hash_token(token) for token in DEV_TOKENS)
#: any published value is a bad secret wherever it is used
_PUBLISHED: Final = frozenset((*DEV_INTEGRATION_KEYS, *DEV_SECRETS, *DEV_TOKENS))

#: how to replace each kind, for the start-up refusal
FIXES: Final = {
    "token": "generate a token and store its hash: python -c 'from schemas.tokens import "
    "generate_token as g, hash_token as h; t=g(); print(t, h(t))'",
    "integration key": "generate a new key (python -c 'import secrets; "
    "print(secrets.token_hex(16))') and configure it in the monitoring system",
    "secret": "generate a new secret (python -c 'import secrets; print(secrets.token_hex(32))') "
    "and share it with the other end",
}


@dataclass(frozen=True)
class DevCredential:
    """One policy entry holding a published credential: where it is, never its value."""

    #: the entry's path in the policy, as policy errors write it (``tokens.0.sha256``)
    path: str
    #: token, integration key or secret (a key of :data:`FIXES`)
    kind: str
    #: the entry's name, so an operator finds it without counting list items
    owner: str


def dev_credentials(policy: Policy) -> list[DevCredential]:
    """Every entry of ``policy`` that holds a development credential, in file order."""
    found: list[DevCredential] = []
    for i, channel in enumerate(policy.channels):
        if channel.secret in _PUBLISHED:
            found.append(DevCredential(f"channels.{i}.secret", "secret", channel.name))
    for i, service in enumerate(policy.services):
        for j, key in enumerate(service.integration_keys):
            if key in _PUBLISHED:
                found.append(
                    DevCredential(
                        f"services.{i}.integration_keys.{j}", "integration key", service.name
                    )
                )
        if service.inbound_secret in _PUBLISHED:
            found.append(DevCredential(f"services.{i}.inbound_secret", "secret", service.name))
    for i, token in enumerate(policy.tokens):
        if token.sha256 in _DEV_TOKEN_HASHES:
            found.append(DevCredential(f"tokens.{i}.sha256", "token", token.name))
    return found


def dev_credentials_text(source: str, found: list[DevCredential]) -> str:
    """The refusal: which entries, how to replace each kind, and how to run with them anyway."""
    lines = [
        f"{source}: holds {len(found)} development credential"
        f"{'' if len(found) == 1 else 's'} published with incidentflow; refusing to start "
        "outside `incidentflow dev`:"
    ]
    lines += [f"  {c.path} ({c.kind} of {c.owner!r})" for c in found]
    lines.append("fix: replace each of them:")
    lines += [f"  {kind}: {FIXES[kind]}" for kind in FIXES if any(c.kind == kind for c in found)]
    lines.append(
        "(a throwaway local setup may set INCIDENTFLOW_ALLOW_DEV_CREDENTIALS=1 instead; "
        "never where anyone else can reach the API)"
    )
    return "\n".join(lines)
