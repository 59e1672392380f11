"""Results: one model for every scenario's figures, printed as rich tables and written as
``bench/results/latest.json`` and ``latest.md``.

Every table has the columns the issue asks for: figure, value, baseline (measured in the
same run, on the same server and worker), ratio (value / baseline), and machine (the CPU
and the load average while the figure was taken), plus the goal and whether it was met.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"


class Figure(BaseModel):
    name: str
    value: float | None
    unit: str = ""
    baseline: float | None = None
    #: what the baseline is (shown under the table)
    baseline_name: str = ""
    goal: str = ""
    ok: bool | None = None
    #: 1-minute load average when the figure was taken
    load: float = 0.0

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline


class ScenarioResult(BaseModel):
    key: str
    title: str
    server: str
    figures: list[Figure] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    seconds: float = 0.0

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure


class RunResult(BaseModel):
    started_at: datetime
    finished_at: datetime | None = None
    quick: bool
    machine: dict[str, object]
    machine_tag: str
    load_at_start: float
    #: set when the machine never quietened (load > 1.5) before the run
    measured_under_load: bool = False
    settings: dict[str, str] = Field(default_factory=dict)
    scenarios: list[ScenarioResult] = Field(default_factory=list)

    @property
    def seconds(self) -> float:
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()


def fmt(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s":
        return f"{value:.3f} s" if abs(value) < 10 else f"{value:.1f} s"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit in ("MiB", "/s"):
        return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.4g} {unit}".strip()


def _ratio(figure: Figure) -> str:
    r = figure.ratio
    return "-" if r is None else f"{r:.2f}x"


def _ok(figure: Figure) -> str:
    if figure.ok is None:
        return figure.goal
    return f"{figure.goal} {'✓' if figure.ok else '✗'}".strip()


def rows(scenario: ScenarioResult, machine_tag: str) -> list[list[str]]:
    return [
        [
            f.name,
            fmt(f.value, f.unit),
            fmt(f.baseline, f.unit),
            _ratio(f),
            _ok(f),
            f"{machine_tag} · load {f.load:.1f}",
        ]
        for f in scenario.figures
    ]


HEADER = ["figure", "value", "baseline", "ratio", "goal", "machine"]


def print_scenario(console: Console, scenario: ScenarioResult, machine_tag: str) -> None:
    table = Table(title=f"{scenario.title} — {scenario.server}", title_justify="left")
    for name in HEADER:
        table.add_column(
            name, justify="right" if name in ("value", "baseline", "ratio") else "left"
        )
    for row in rows(scenario, machine_tag):
        table.add_row(*row)
    console.print(table)
    for note in _notes(scenario):
        console.print(f"  [dim]{note}[/dim]")


def _notes(scenario: ScenarioResult) -> list[str]:
    baselines = dict.fromkeys(f.baseline_name for f in scenario.figures if f.baseline_name)
    return [f"baseline: {b}" for b in baselines] + scenario.notes


def markdown(run: RunResult) -> str:
    lines = [
        f"Measured {run.started_at:%Y-%m-%d %H:%M} UTC on {run.machine_tag} "
        f"(Python {run.machine.get('python')}, temporalio {run.machine.get('temporalio')}, "
        f"Temporal CLI {run.machine.get('temporal_cli')}); "
        f"{'quick mode; ' if run.quick else ''}load average {run.load_at_start:.2f} at start"
        f"{' — **measured under load**' if run.measured_under_load else ''}; "
        f"whole run {run.seconds / 60:.1f} min.",
        "",
    ]
    if run.settings:
        lines.append(
            "Worker settings: " + ", ".join(f"`{k}={v}`" for k, v in sorted(run.settings.items()))
        )
        lines.append("")
    for scenario in run.scenarios:
        lines.append(f"### {scenario.title} — {scenario.server}")
        lines.append("")
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("|" + "|".join("---" for _ in HEADER) + "|")
        for row in rows(scenario, run.machine_tag):
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        lines.append("")
        for note in _notes(scenario):
            lines.append(f"- {note}")
        if _notes(scenario):
            lines.append("")
    return "\n".join(lines)


def write(run: RunResult, directory: Path = RESULTS, stem: str = "latest") -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{stem}.json"
    md_path = directory / f"{stem}.md"
    json_path.write_text(run.model_dump_json(indent=2) + "\n")
    md_path.write_text(markdown(run) + "\n")
    return json_path, md_path
