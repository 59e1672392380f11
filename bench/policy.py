"""The policy every benchmark runs on.

Clocks are long (hours) so nothing escalates on its own while a scenario runs: the
escalation scenarios set their deadlines explicitly (``bench.seed``), and every other
incident stays quietly open. Users have no contact details, so notifications go to the
console channel: the notify activity, its outbox rows and its idempotency checks all run,
nothing leaves the machine.
"""

from __future__ import annotations

from typing import Any

from schemas.policy import Policy
from schemas.tokens import hash_token

INGEST_SERVICE = "bench-ingest"
ESCALATE_SERVICE = "bench-escalate"
REPEAT_SERVICE = "bench-repeat"
INTEGRATION_KEYS = {
    INGEST_SERVICE: "bench-ingest-key",
    ESCALATE_SERVICE: "bench-escalate-key",
    REPEAT_SERVICE: "bench-repeat-key",
}
#: bearer token of the responders (scopes respond + read); a benchmark secret, not a real one
RESPONDER_TOKEN = "bench-responder-token"
RESPONDER = "u2"

HOUR = 3600.0


def bench_policy() -> Policy:
    users = ["u0", "u1", "u2", "u3"]
    severity: dict[str, Any] = {
        "ack_within": 2 * HOUR,
        "mitigate_within": 4 * HOUR,
        "resolve_within": 8 * HOUR,
        "update_every": None,
        "review_required": False,
    }
    return Policy.model_validate(
        {
            "users": [{"name": u} for u in users],
            "channels": [{"name": "ops-console", "kind": "console"}],
            "escalation_policies": [
                {
                    "name": "bench",
                    "repeat": 0,
                    "levels": [
                        {"targets": ["user:u0"], "delay": HOUR},
                        {"targets": ["user:u1"], "delay": HOUR},
                        {"targets": ["user:u3"], "delay": HOUR},
                    ],
                }
            ],
            "severities": {s: severity for s in ("SEV1", "SEV2", "SEV3", "SEV4")},
            "services": [
                {
                    "name": name,
                    "escalation_policy": "bench",
                    "integration_keys": [key],
                    "auto_resolve": True,
                    "reopen_window": HOUR,
                }
                for name, key in INTEGRATION_KEYS.items()
            ],
            "tokens": [
                {
                    "name": "responders",
                    "user": RESPONDER,
                    "sha256": hash_token(RESPONDER_TOKEN),
                    "scopes": ["respond", "read"],
                }
            ],
        }
    )
