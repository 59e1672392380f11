"""The reports page (``/reports``): MTTA and MTTR per severity per week, SLA compliance,
incidents by category and service, as server-drawn SVG charts (:mod:`starter.dashboard.charts`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from schemas.enums import Clock, Severity
from starter import tickets_read, time_text, trends_read
from starter.api.context import ApiContext
from starter.dashboard import charts, queries
from starter.dashboard.pages import ctx_of, dashboard_of, guarded, page_user, render

router = APIRouter()


def week_label(week: datetime) -> str:
    return week.strftime("%d %b")


async def report_values(ctx: ApiContext, weeks: int, service: str | None) -> dict[str, Any]:
    pool = ctx.db()
    since = datetime.now(UTC) - timedelta(weeks=weeks)
    weekly = await queries.weekly_times(pool, since=since, service=service)
    summary = await tickets_read.summary(pool, since=since, service=service)
    trend = await trends_read.trends(pool, since=since, service=service)
    recurring = await trends_read.recurring(pool, service=service)
    week_keys = sorted({w.week for w in weekly})
    labels = [week_label(w) for w in week_keys]
    by_key = {(w.week, w.severity): w for w in weekly}
    severities = list(Severity)

    def weekly_series(attr: str) -> list[charts.Series]:
        out = []
        for sev in severities:
            values = [
                getattr(by_key[(w, sev)], attr) if (w, sev) in by_key else None for w in week_keys
            ]
            if any(v is not None for v in values):
                out.append(charts.Series(sev.value, charts.SEVERITY_COLOURS[sev], values))
        return out

    clocks = [c for c in (Clock.ACK, Clock.MITIGATE, Clock.RESOLVE)]
    sla = {(s.clock, s.severity): s for s in summary.sla}
    sla_series = []
    for sev in severities:
        values = [
            (sla[(c, sev)].compliance or 0) * 100
            if (c, sev) in sla and sla[(c, sev)].compliance is not None
            else None
            for c in clocks
        ]
        if any(v is not None for v in values):
            sla_series.append(charts.Series(sev.value, charts.SEVERITY_COLOURS[sev], values))
    overall = []
    for c in clocks:
        met = sum(s.met for s in summary.sla if s.clock == c)
        breached = sum(s.breached for s in summary.sla if s.clock == c)
        overall.append(
            {
                "clock": c.value,
                "met": met,
                "breached": breached,
                "compliance": (met / (met + breached)) if met + breached else None,
            }
        )
    counts = {(w.week, w.key): float(w.count) for w in trend.by_service}
    trend_series = [
        charts.Series(
            noisy.service,
            charts.PALETTE[i % len(charts.PALETTE)],
            [counts.get((w, noisy.service)) for w in trend.weeks],
        )
        for i, noisy in enumerate(trend.noisiest)
    ]
    categories = sorted(summary.by_category.items(), key=lambda kv: (-kv[1], kv[0]))
    services = sorted(summary.by_service.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "weeks": weeks,
        "service": service or "",
        "summary": summary,
        "weekly": weekly,
        "sla_overall": overall,
        "categories": categories,
        "services_counts": services,
        "trend": trend,
        "recurring": recurring,
        "chart_trends": charts.grouped_bars(
            "Incidents per week, noisiest services",
            [week_label(w) for w in trend.weeks],
            trend_series,
        ),
        "chart_mtta": charts.grouped_bars(
            "MTTA per severity per week", labels, weekly_series("mtta_seconds"), fmt=axis_time
        ),
        "chart_mttr": charts.grouped_bars(
            "MTTR per severity per week", labels, weekly_series("mttr_seconds"), fmt=axis_time
        ),
        "chart_sla": charts.grouped_bars(
            "SLA compliance per clock (%)",
            [c.value for c in clocks],
            sla_series,
            fmt=lambda v: f"{v:.0f}%",
            maximum=100,
        ),
        "chart_categories": charts.horizontal_bars(
            "Incidents by category", [(k.replace("_", " "), float(v)) for k, v in categories]
        ),
        "chart_services": charts.horizontal_bars(
            "Incidents by service", [(k, float(v)) for k, v in services], colour="#00796b"
        ),
    }


def axis_time(seconds: float) -> str:
    if seconds == 0:
        return "0"
    return f"{seconds:.3g}s" if seconds < 60 else time_text.short(seconds)


@router.get("/reports")
@guarded
async def reports(request: Request) -> Response:
    dash = dashboard_of(request)
    user = page_user(dash, request)
    try:
        weeks = min(104, max(1, int(request.query_params.get("weeks") or 12)))
    except ValueError:
        weeks = 12
    service = request.query_params.get("service") or None
    ctx = ctx_of(request)
    values = await report_values(ctx, weeks, service)
    known = sorted({s.name for s in ctx.policy.services})
    return render(dash, request, "reports.html", user, services=known, **values)
