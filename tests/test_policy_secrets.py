"""Secrets out of the policy file: ``${ENV}`` and ``file:/path`` references in secret-bearing
fields, resolved at load; unresolved ones listed with their lines (also by ``policy check``);
a resolved value never appears in any error, log line or output."""

from __future__ import annotations

import logging
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from schemas.policy import Policy
from schemas.policy_file import PolicyError, load_policy, parse_policy
from schemas.policy_holder import PolicyHolder, policy_hash
from schemas.policy_secrets import is_secret_bearing
from schemas.tokens import hash_token
from tests.support_cli import clean_env, run_cli

TOKEN_HASH = hash_token("secrets-test-token")
#: values a leak would show; none is ever printed or logged
SLACK = "https://hooks.slack.com/services/T1/B2/leak-slack-0a1b2c"
HMAC = "leak-hmac-3d4e5f"
KEY = "leak-integration-key-6a7b8c"
INBOUND = "leak-inbound-9d0e1f"

POLICY = """\
base_url: https://incidents.example.com
users:
  - name: alice
    slack: ${{TEST_SLACK_URL}}
    webhook: file:{dir}/alice-webhook
channels:
  - name: hook
    kind: webhook
    target: ${{TEST_HOOK_URL}}
    secret: file:{dir}/hmac
escalation_policies:
  - name: default
    levels:
      - targets: [user:alice, channel:hook]
severities:
  SEV1: {{ack_within: 5m, mitigate_within: 1h, resolve_within: 4h}}
  SEV2: {{ack_within: 5m, mitigate_within: 1h, resolve_within: 4h}}
  SEV3: {{ack_within: 5m, mitigate_within: 1h, resolve_within: 4h}}
  SEV4: {{ack_within: 5m, mitigate_within: 1h, resolve_within: 4h}}
services:
  - name: checkout
    escalation_policy: default
    integration_keys: [plain-key, "${{TEST_KEY}}"]
    inbound_secret: file:{dir}/inbound
tokens:
  - name: ci
    user: alice
    sha256: file:{dir}/token-hash
    scopes: [admin]
"""


def write_secrets(directory: Path) -> dict[str, str]:
    """The secret files (with the trailing newline a mounted secret has) and the env."""
    (directory / "alice-webhook").write_text("https://hooks.example/alice-leak-7f8e\n")
    (directory / "hmac").write_text(HMAC + "\n")
    (directory / "inbound").write_text(INBOUND)
    (directory / "token-hash").write_text(TOKEN_HASH + "\n")
    return {"TEST_SLACK_URL": SLACK, "TEST_HOOK_URL": "https://hooks.example/x", "TEST_KEY": KEY}


def secret_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted paths (``*`` for list items) of every secret-bearing field."""
    found: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if is_secret_bearing(info.annotation, info.metadata):
            found.add(path)
            continue
        annotation: Any = info.annotation
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (list, dict):
            path, annotation = f"{path}.*", args[-1]
            if is_secret_bearing(annotation):
                found.add(path)
        elif len(args) == 1:  # X | None
            annotation = args[0]
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found |= secret_paths(annotation, f"{path}.")
    return found


def test_the_secret_bearing_fields() -> None:
    """Every credential the policy holds is marked; a new one must be added here on purpose."""
    assert secret_paths(Policy) == {
        "users.*.slack",
        "users.*.webhook",
        "channels.*.target",
        "channels.*.secret",
        "services.*.integration_keys.*",
        "services.*.inbound_secret",
        "tokens.*.sha256",
    }


def test_env_and_file_references_resolve_in_every_secret_field(tmp_path: Path) -> None:
    env = write_secrets(tmp_path)
    policy = parse_policy(POLICY.format(dir=tmp_path), "p.yaml", env)
    alice = policy.users[0]
    assert alice.slack == SLACK
    assert alice.webhook == "https://hooks.example/alice-leak-7f8e"  # newline stripped
    assert policy.channels[0].target == "https://hooks.example/x"
    assert policy.channels[0].secret == HMAC
    assert policy.services[0].integration_keys == ["plain-key", KEY]
    assert policy.services[0].inbound_secret == INBOUND
    assert policy.tokens[0].sha256 == TOKEN_HASH
    assert policy.service_for_key(KEY) is policy.services[0]
    # the hash is of the resolved policy: a rotated secret changes it
    (tmp_path / "hmac").write_text("rotated")
    assert policy_hash(parse_policy(POLICY.format(dir=tmp_path), "p.yaml", env)) != policy_hash(
        policy
    )


def test_unresolved_references_are_errors_on_their_lines(tmp_path: Path) -> None:
    write_secrets(tmp_path)
    (tmp_path / "inbound").write_text("  \n")  # empty
    (tmp_path / "token-hash").unlink()
    (tmp_path / "hmac").unlink()
    (tmp_path / "hmac").mkdir()
    text = POLICY.format(dir=tmp_path)
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml", {"TEST_SLACK_URL": SLACK, "TEST_HOOK_URL": ""})
    assert caught.value.errors == [
        "p.yaml:9: channels.0.target: unresolved reference: environment variable "
        "TEST_HOOK_URL is empty (from ${TEST_HOOK_URL})",
        f"p.yaml:10: channels.0.secret: unresolved reference: secret file {tmp_path}/hmac "
        "is a directory",
        "p.yaml:23: services.0.integration_keys.1: unresolved reference: environment "
        "variable TEST_KEY is not set (from ${TEST_KEY})",
        f"p.yaml:24: services.0.inbound_secret: unresolved reference: secret file "
        f"{tmp_path}/inbound is empty",
        f"p.yaml:28: tokens.0.sha256: unresolved reference: secret file "
        f"{tmp_path}/token-hash does not exist",
    ]


def test_a_resolved_value_is_never_quoted_in_errors(tmp_path: Path) -> None:
    env = write_secrets(tmp_path)
    (tmp_path / "token-hash").write_text("not-a-hash-leak-1234")
    text = POLICY.format(dir=tmp_path)
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml", env)
    (error,) = caught.value.errors
    assert error.startswith("p.yaml:28: tokens.0.sha256: string should match pattern")
    assert "leak" not in str(caught.value)
    # a literal value in the file is quoted as before: it is in the file anyway
    with pytest.raises(PolicyError) as literal:
        parse_policy(text.replace(f"file:{tmp_path}/token-hash", "not-a-hash"), "p.yaml", env)
    assert "(got 'not-a-hash')" in literal.value.errors[0]


def test_references_outside_secret_fields_are_errors(tmp_path: Path) -> None:
    env = write_secrets(tmp_path)
    text = POLICY.format(dir=tmp_path).replace(
        "base_url: https://incidents.example.com", "base_url: ${BASE_URL}"
    )
    text = text.replace("  - name: checkout\n", "  - name: checkout\n    description: file:/x\n")
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml", {**env, "BASE_URL": "https://x"})
    assert [e.split(": ", 2)[:2] for e in caught.value.errors] == [
        ["p.yaml:1", "base_url"],
        ["p.yaml:22", "services.0.description"],
    ]
    assert "resolved only in secret-bearing fields" in caught.value.errors[0]
    # text that merely contains ${ or file: is an ordinary value
    fine = POLICY.format(dir=tmp_path).replace(
        "  - name: checkout\n", "  - name: checkout\n    description: costs ${5} per file:x\n"
    )
    assert parse_policy(fine, "p.yaml", env).services[0].description == "costs ${5} per file:x"


def test_policy_check_lists_unresolved_references_and_prints_no_secret(tmp_path: Path) -> None:
    env = write_secrets(tmp_path)
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(dir=tmp_path))

    ok = run_cli("policy", "check", str(path), env={**clean_env(), **env})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: 1 services")

    (tmp_path / "hmac").unlink()
    missing = run_cli("policy", "check", str(path), env={**clean_env(), **env, "TEST_KEY": ""})
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        f"{path}: invalid policy (2 errors)",
        f"{path}:10: channels.0.secret: unresolved reference: secret file {tmp_path}/hmac "
        "does not exist",
        f"{path}:23: services.0.integration_keys.1: unresolved reference: environment "
        "variable TEST_KEY is empty (from ${TEST_KEY})",
    ]
    for result in (ok, missing):
        for value in (SLACK, HMAC, KEY, INBOUND, TOKEN_HASH, "alice-leak"):
            assert value not in result.stdout + result.stderr


def test_holder_reload_swaps_or_keeps_and_logs_every_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in write_secrets(tmp_path).items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(dir=tmp_path))
    holder = PolicyHolder(load_policy(path), path=path)
    first = holder.hash

    caplog.set_level(logging.INFO, "incidentflow.policy")
    (tmp_path / "hmac").write_text("rotated-leak-hmac")
    assert holder.reload() != first
    assert holder.current.channels[0].secret == "rotated-leak-hmac"
    second = holder.hash

    (tmp_path / "token-hash").unlink()
    path.write_text(POLICY.format(dir=tmp_path).replace("kind: webhook", "kind: pigeon"))
    with pytest.raises(PolicyError) as caught:
        holder.reload()
    assert len(caught.value.errors) == 2
    assert holder.hash == second  # the old policy stays
    assert holder.current.channels[0].secret == "rotated-leak-hmac"
    logged = [r.getMessage() for r in caplog.records]
    assert f"policy reload from {path} failed (2 errors); keeping {second}" in logged
    for error in caught.value.errors:
        assert f"policy reload: {error}" in logged
    assert not [line for line in logged if "leak" in line]
