"""The development-credential check (schemas.dev_credentials) against the shipped policies:
every credential examples/policy.yaml publishes is in its tables, and the production
template holds none."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from schemas.dev_credentials import (
    DEV_INTEGRATION_KEYS,
    DEV_SECRETS,
    DEV_TOKENS,
    dev_credentials,
    dev_credentials_text,
)
from schemas.policy import Policy
from schemas.policy_file import load_policy
from schemas.tokens import hash_token
from tests.support_cli import EXAMPLE_POLICY

ROOT = Path(__file__).resolve().parents[1]


def test_the_tables_hold_exactly_the_credentials_the_example_publishes() -> None:
    raw = yaml.safe_load(EXAMPLE_POLICY.read_text(encoding="utf-8"))
    keys = [key for svc in raw["services"] for key in svc.get("integration_keys", [])]
    secrets = [c["secret"] for c in raw["channels"] if c.get("secret")]
    secrets += [s["inbound_secret"] for s in raw["services"] if s.get("inbound_secret")]
    assert sorted(keys) == sorted(DEV_INTEGRATION_KEYS)
    assert sorted(secrets) == sorted(DEV_SECRETS)
    # the file stores hashes; its comments name the tokens, which the README publishes
    assert sorted(t["sha256"] for t in raw["tokens"]) == sorted(map(hash_token, DEV_TOKENS))
    commented = re.findall(r"sha256: [0-9a-f]{64} # (\S+)", EXAMPLE_POLICY.read_text())
    assert sorted(commented) == sorted(DEV_TOKENS)


def test_every_credential_of_the_example_is_found_by_its_path() -> None:
    found = dev_credentials(load_policy(EXAMPLE_POLICY))
    assert [(c.path, c.kind, c.owner) for c in found] == [
        ("channels.3.secret", "secret", "status-page"),
        ("services.0.integration_keys.0", "integration key", "checkout"),
        ("services.0.integration_keys.1", "integration key", "checkout"),
        ("services.1.integration_keys.0", "integration key", "search"),
        ("services.2.integration_keys.0", "integration key", "data-pipeline"),
        ("tokens.0.sha256", "token", "dev-admin"),
        ("tokens.1.sha256", "token", "dev-responder"),
    ]


def test_a_published_value_is_found_wherever_it_is_used() -> None:
    policy = Policy.model_validate(
        {
            "users": [{"name": "alice"}],
            "channels": [{"name": "hook", "kind": "webhook", "target": "https://x", "secret": "s"}],
            "escalation_policies": [{"name": "p", "levels": [{"targets": ["user:alice"]}]}],
            "severities": {
                sev: {"ack_within": 60, "mitigate_within": 60, "resolve_within": 60}
                for sev in ("SEV1", "SEV2", "SEV3", "SEV4")
            },
            "services": [
                {"name": "a", "escalation_policy": "p", "inbound_secret": DEV_SECRETS[0]},
                {"name": "b", "escalation_policy": "p", "inbound_secret": DEV_INTEGRATION_KEYS[2]},
                {"name": "c", "escalation_policy": "p", "integration_keys": ["own-key"]},
            ],
            "tokens": [
                {"name": "ok", "user": "alice", "sha256": hash_token("own"), "scopes": ["read"]}
            ],
        }
    )
    found = dev_credentials(policy)
    assert [c.path for c in found] == ["services.0.inbound_secret", "services.1.inbound_secret"]
    text = dev_credentials_text("p.yaml", found)
    assert text.startswith("p.yaml: holds 2 development credentials")
    assert "secret: generate a new secret" in text
    assert "token:" not in text and "integration key:" not in text
    assert DEV_SECRETS[0] not in text and DEV_INTEGRATION_KEYS[2] not in text


def test_the_production_template_holds_no_development_credential() -> None:
    template = ROOT / "examples" / "policy.production.yaml"
    text = template.read_text(encoding="utf-8")
    for value in (*DEV_TOKENS, *DEV_INTEGRATION_KEYS, *DEV_SECRETS, *map(hash_token, DEV_TOKENS)):
        assert value not in text


def template_env(**overrides: str) -> dict[str, str]:
    env = {
        "INCIDENTFLOW_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T1/B1/own",
        "INCIDENTFLOW_STATUS_WEBHOOK_SECRET": "own-status-secret",
        "INCIDENTFLOW_CHECKOUT_INTEGRATION_KEY": "own-integration-key",
        "INCIDENTFLOW_CHECKOUT_INBOUND_SECRET": "own-inbound-secret",
        "INCIDENTFLOW_ADMIN_TOKEN_SHA256": hash_token("own-admin-token"),
    }
    return env | overrides


def test_the_production_template_loads_with_its_references_set() -> None:
    policy = load_policy(ROOT / "examples" / "policy.production.yaml", env=template_env())
    assert dev_credentials(policy) == []
    assert policy.tokens[0].sha256 == hash_token("own-admin-token")


def test_a_published_value_behind_a_reference_is_still_found() -> None:
    env = template_env(
        INCIDENTFLOW_ADMIN_TOKEN_SHA256=hash_token(DEV_TOKENS[0]),
        INCIDENTFLOW_CHECKOUT_INTEGRATION_KEY=DEV_INTEGRATION_KEYS[0],
    )
    policy = load_policy(ROOT / "examples" / "policy.production.yaml", env=env)
    assert [c.path for c in dev_credentials(policy)] == [
        "services.0.integration_keys.0",
        "tokens.0.sha256",
    ]
