"""Similar-incident look-ups and search at 10,000 past incidents (goal: similar p99 < 50 ms).

No Temporal here: the rows are written straight into PostgreSQL (COPY), each with a
resolution and a note in its timeline, then every search document is built by the same
``refresh_incident_search`` the ticket activities call. The timed call is exactly what
``GET /api/v1/incidents/{n}/similar`` runs (``starter.knowledge_read.similar``: the probe's
row, then the ranking of ``schemas.similarity``), one at a time on a warm pool, for incidents
picked among the newest fifth (so most of the corpus is in their past).

    python -m bench.similar                  # 10,000 incidents, 300 look-ups
    python -m bench.similar --incidents 2000 --lookups 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from activities.db import create_pool
from bench.harness import Postgres, load1, percentile
from bench.report import Figure, ScenarioResult
from starter import knowledge_read

GOAL_MS = 50.0
SERVICES = [
    "checkout", "payments", "search", "orders", "identity", "catalog", "shipping", "billing",
    "notifications", "gateway", "inventory", "pricing", "reviews", "media", "ledger",
    "fraud", "recommendations", "carts", "accounts", "reporting",
]  # fmt: skip
#: (dedup-key family, title, description, resolution): a fleet's usual troubles
PROBLEMS = [
    ("pgbouncer-pool", "{svc} pgbouncer pool exhausted on {host}",
     "clients wait for a server connection; pool saturated", "raised pgbouncer pool size"),
    ("latency-p99", "{svc} p99 latency above {n}ms",
     "slow responses on the main endpoint after a deploy", "rolled back the release"),
    ("error-rate", "{svc} 5xx error rate above {n}%",
     "the load balancer reports upstream errors", "restarted the unhealthy pods"),
    ("disk-full", "Disk full on {host}", "the data volume reached 95%",
     "deleted old logs and expanded the volume"),
    ("replica-lag", "Replica lag on {host} above {n}s", "replication slot falls behind",
     "promoted a fresh replica"),
    ("cert-expiry", "TLS certificate for {svc} expires in {n} days",
     "cert-manager did not renew", "renewed the certificate by hand"),
    ("oom", "{svc} pods OOMKilled on {host}", "memory limit reached under load",
     "raised the memory limit"),
    ("kafka-lag", "Kafka consumer lag on {svc} above {n}k",
     "consumers cannot keep up with the topic", "scaled out the consumers"),
    ("dns", "DNS resolution failures in {svc}", "intermittent NXDOMAIN from the resolver",
     "restarted coredns"),
    ("queue-backlog", "{svc} job queue backlog above {n}",
     "workers stuck on a poisoned message", "moved the message to the dead-letter queue"),
    ("cpu-throttle", "{svc} CPU throttling on {host}", "cfs quota too low for the traffic",
     "raised the CPU limit"),
    ("psp-timeouts", "Payment provider timeouts in {svc}", "the PSP answers after 30 s",
     "failed over to the secondary provider"),
]  # fmt: skip
_COLUMNS = (
    "number, number_seq, workflow_id, title, description, service, status, severity, "
    "priority, impact, urgency, category, dedup_key, snapshot, last_seq, created_at, "
    "acknowledged_at, resolved_at, closed_at"
)


def corpus(count: int, rng: random.Random, start: datetime) -> tuple[list[tuple], list[tuple]]:
    """``count`` resolved incidents over the year before ``start``, and their events."""
    incidents: list[tuple] = []
    events: list[tuple] = []
    for seq in range(1, count + 1):
        family, title, description, resolution = rng.choice(PROBLEMS)
        service = rng.choice(SERVICES)
        host = f"{service[:3]}-{rng.randint(1, 40):02d}"
        fields = {"svc": service.capitalize(), "host": host, "n": rng.choice([2, 5, 30, 500])}
        created = start - timedelta(days=365) + timedelta(minutes=seq * 525600 / count)
        resolved = created + timedelta(minutes=rng.randint(3, 240))
        number = f"INC-{seq}"
        incidents.append(
            (
                number, seq, f"incident:{service}:{family}:{host}", title.format(**fields),
                description, service, "closed", rng.choice(["SEV1", "SEV2", "SEV3", "SEV4"]),
                "P3", "medium", "medium", "software", f"{family}:{host}", "{}", 3, created,
                created + timedelta(minutes=2), resolved, resolved,
            )
        )  # fmt: skip
        events.append((number, 1, created, "monitoring", "triggered", "{}"))
        note = json.dumps({"text": f"looking at {host}: {description}"})
        events.append((number, 2, created, "alice", "note_added", note))
        done = json.dumps({"resolution": resolution})
        events.append((number, 3, resolved, "alice", "resolved", done))
    return incidents, events


async def run(url: str, *, incidents: int = 10_000, lookups: int = 300) -> ScenarioResult:
    result = ScenarioResult(
        key="similar", title=f"Similar incidents at {incidents:,} past incidents", server="-"
    )
    rng = random.Random(19)
    rows, events = corpus(incidents, rng, datetime.now(UTC))
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        started = time.perf_counter()
        async with pool.connection() as conn:
            cur = conn.cursor()
            async with cur.copy(f"COPY incidents ({_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row(row)
            columns = "number, seq, at, actor, kind, details"
            async with cur.copy(f"COPY incident_events ({columns}) FROM STDIN") as copy:
                for event in events:
                    await copy.write_row(event)
            await conn.execute("SELECT refresh_incident_search(number) FROM incidents")
        async with pool.connection() as conn:
            await conn.set_autocommit(True)
            await conn.execute("VACUUM ANALYZE incidents")
        result.notes.append(
            f"seeded {incidents:,} incidents (COPY + refresh_incident_search) in "
            f"{time.perf_counter() - started:.1f} s"
        )
        newest = [r[0] for r in rows[-max(1, incidents // 5) :]]
        for _ in range(5):  # warm the pool and the caches
            await knowledge_read.similar(pool, rng.choice(newest))
        timings: list[float] = []
        found = 0
        for _ in range(lookups):
            number = rng.choice(newest)
            t0 = time.perf_counter()
            similar = await knowledge_read.similar(pool, number)
            timings.append((time.perf_counter() - t0) * 1000)
            found += bool(similar and similar.items)
        words = ["pgbouncer", "replica lag", "certificate", "oomkilled", "dead-letter", "dns"]
        searches: list[float] = []
        for _ in range(lookups // 3 or 1):
            t0 = time.perf_counter()
            await knowledge_read.search(pool, rng.choice(words))
            searches.append((time.perf_counter() - t0) * 1000)
    finally:
        await pool.close()
    p99 = percentile(timings, 99)
    load = load1()
    result.add(Figure(name="similar look-up p50", value=percentile(timings, 50), unit="ms"))
    result.add(
        Figure(
            name="similar look-up p99",
            value=p99,
            unit="ms",
            goal=f"< {GOAL_MS:.0f} ms",
            ok=p99 < GOAL_MS,
            load=load,
        )
    )
    result.add(Figure(name="look-ups with a match", value=found, unit=f"of {lookups}"))
    result.add(Figure(name="search p99", value=percentile(searches, 99), unit="ms", load=load))
    return result


async def main(incidents: int, lookups: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-similar-"))
    postgres = Postgres(workdir)
    postgres.start()
    name = f"bench_similar_{uuid.uuid4().hex[:8]}"
    try:
        url = postgres.create_database(name)
        result = await run(url, incidents=incidents, lookups=lookups)
        postgres.drop_database(name)
    finally:
        postgres.stop()
    print(result.title)
    for figure in result.figures:
        goal = f"  (goal {figure.goal}: {'ok' if figure.ok else 'MISSED'})" if figure.goal else ""
        print(f"  {figure.name}: {figure.value:.1f} {figure.unit}{goal}")
    for note in result.notes:
        print(f"  {note}")
    print(f"  1-minute load average at the end: {load1():.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(main(args.incidents, args.lookups))
