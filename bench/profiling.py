"""``BENCH_PROFILE=<file>``: a benchmark process (worker, API) profiled with pyinstrument while
it runs; the text report goes to ``<file>``, the session beside it (``.pyisession``)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def profiled() -> Iterator[None]:
    """Profile the block when ``BENCH_PROFILE`` names a file; otherwise just run it."""
    profile_to = os.environ.get("BENCH_PROFILE")
    if not profile_to:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.002, async_mode="disabled")
    profiler.start()
    try:
        yield
    finally:
        session = profiler.stop()
        Path(profile_to).write_text(profiler.output_text(unicode=True, show_all=False))
        session.save(str(Path(profile_to).with_suffix(".pyisession")))
