"""The policy a running process serves, swapped whole when the file is reloaded.

The API and the worker read the policy through one :class:`PolicyHolder` (never a copy kept
aside), so a reload (SIGHUP, ``POST /api/v1/admin/policy/reload``) reaches every reader at
once: API auth, the snapshot given to each *new* incident, notification targets. A running
incident keeps the snapshot it started with (it lives in its workflow's input). A file that
fails to load changes nothing: the old policy stays and every error is logged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from schemas.dev_credentials import dev_credentials
from schemas.policy import Policy
from schemas.policy_file import PolicyError, load_policy

log = logging.getLogger("incidentflow.policy")

#: the metric (API and worker) naming the policy in force by its hash
POLICY_INFO_METRIC = "incidentflow_policy_info"

#: more checks a served policy must pass (e.g. no development credentials); each returns
#: error lines, empty when the policy is fine
PolicyCheck = Callable[[Policy, str], list[str]]


def policy_hash(policy: Policy) -> str:
    """A short fingerprint of the resolved policy: equal files give equal hashes, and the
    12 hex digits of a SHA-256 reveal nothing of the secrets inside."""
    return hashlib.sha256(policy.model_dump_json().encode()).hexdigest()[:12]


def no_dev_credentials(policy: Policy, source: str) -> list[str]:
    """The check production's reload runs: what would refuse a start refuses a reload."""
    return [
        f"{source}: {found.path}: a development {found.kind} published with incidentflow "
        f"({found.kind} of {found.owner!r}); replace it or set INCIDENTFLOW_ALLOW_DEV_CREDENTIALS=1"
        for found in dev_credentials(policy)
    ]


class PolicyHolder:
    """The current policy, its hash, and how to reload it from ``path``."""

    def __init__(
        self, policy: Policy, path: Path | None = None, check: PolicyCheck | None = None
    ) -> None:
        self.path = path
        self.check = check
        self._current = policy
        self._hash = policy_hash(policy)
        self._listeners: list[Callable[[str, str], None]] = []

    @classmethod
    def of(cls, policy: Policy | PolicyHolder) -> PolicyHolder:
        """``policy`` itself when it is a holder, else a holder that cannot reload (tests,
        one-shot CLI commands)."""
        return policy if isinstance(policy, PolicyHolder) else cls(policy)

    @property
    def current(self) -> Policy:
        return self._current

    @property
    def hash(self) -> str:
        return self._hash

    def on_reload(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(old_hash, new_hash)`` after each successful reload."""
        self._listeners.append(listener)

    def reload(self) -> str:
        """Load the file again and swap it in; returns the new hash. A file with errors
        raises :class:`PolicyError` (every error logged) and the old policy stays."""
        if self.path is None:
            raise PolicyError(["this process was given no policy file to reload"])
        source = str(self.path)
        try:
            policy = load_policy(self.path)
            problems = self.check(policy, source) if self.check is not None else []
            if problems:
                raise PolicyError(problems, source)
        except PolicyError as err:
            count = len(err.errors)
            log.error(
                "policy reload from %s failed (%d error%s); keeping %s",
                source,
                count,
                "" if count == 1 else "s",
                self._hash,
            )
            for line in err.errors:
                log.error("policy reload: %s", line)
            raise
        previous = self._hash
        self._current = policy
        self._hash = policy_hash(policy)
        log.info("policy reloaded from %s: %s -> %s", source, previous, self._hash)
        for listener in self._listeners:
            listener(previous, self._hash)
        return self._hash

    def reload_quietly(self) -> None:
        """:meth:`reload` for a signal handler: errors are logged, nothing raised."""
        try:
            self.reload()
        except PolicyError:
            pass
