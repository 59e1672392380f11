"""Audit export in constant memory: the incidents CSV at 10,000 and 100,000 incidents.

Rows are written straight into PostgreSQL (COPY, ``bench.similar.corpus``: each incident with
three timeline events); the timed call is what ``GET /api/v1/exports/incidents.csv`` streams
(``starter.exports_read.csv_chunks``: a server-side cursor, 1,000 rows a chunk), with
Python's traced memory peak while it runs. Flat memory means the peak does not grow with
the row count.

    python -m bench.exports                     # 10,000 then 100,000 incidents
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime
from pathlib import Path

from activities.db import create_pool
from bench.harness import Postgres, load1
from bench.similar import corpus
from starter import exports_read

_COLUMNS = (
    "number, number_seq, workflow_id, title, description, service, status, severity, "
    "priority, impact, urgency, category, dedup_key, snapshot, last_seq, created_at, "
    "acknowledged_at, resolved_at, closed_at"
)


async def measure(url: str, incidents: int) -> tuple[float, float, int]:
    """(seconds, peak traced MiB, bytes) of one full incidents.csv export."""
    rows, _ = corpus(incidents, random.Random(7), datetime.now(UTC))
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        async with pool.connection() as conn:
            await conn.execute("TRUNCATE incidents")
            async with conn.cursor().copy(f"COPY incidents ({_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    await copy.write_row(row)
        del rows
        tracemalloc.start()
        started = time.perf_counter()
        size = 0
        async for chunk in exports_read.csv_chunks(pool, "incidents", exports_read.ExportFilters()):
            size += len(chunk.encode())
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    finally:
        await pool.close()
    return seconds, peak, size


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-exports-"))
    postgres = Postgres(workdir)
    postgres.start()
    name = f"bench_exports_{uuid.uuid4().hex[:8]}"
    try:
        url = postgres.create_database(name)
        for incidents in (10_000, 100_000):
            seconds, peak, size = await measure(url, incidents)
            print(
                f"incidents.csv at {incidents:,} incidents: {seconds:.1f} s, "
                f"{size / 2**20:.1f} MiB, {incidents / seconds:,.0f} rows/s, "
                f"peak traced memory {peak:.2f} MiB"
            )
        postgres.drop_database(name)
    finally:
        postgres.stop()
    print(f"1-minute load average at the end: {load1():.2f}")


if __name__ == "__main__":
    asyncio.run(main())
