"""Report section: what each stage cost (tokens, USD) and how long it took, from metrics/*.json."""

from __future__ import annotations

from typing import Any

from ift_select.reporting.render import Block, Heading, Table

COST_KEYS = ("rows", "requests", "cache_hits", "tokens_in", "tokens_out", "cost_usd", "seconds")


def costs_section(stage_metrics: dict[str, dict[str, Any]]) -> list[Block]:
    rows, totals = [], {"cost_usd": 0.0, "seconds": 0.0}
    for name, m in sorted(stage_metrics.items()):
        if not any(k in m for k in COST_KEYS):
            continue
        rows.append([name] + [m.get(k) for k in COST_KEYS])
        for k in totals:
            totals[k] += float(m.get(k) or 0)
    rows.append(["total", None, None, None, None, None, round(totals["cost_usd"], 6), round(totals["seconds"], 1)])
    return [Heading("Costs and times"), Table(["stage"] + list(COST_KEYS), rows,
                                              caption="From metrics/*.json; local models cost nothing.")]
