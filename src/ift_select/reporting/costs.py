"""Report section: what each stage cost (tokens, USD) and how long it took, from metrics/*.json.

Two costs per stage: ``spent by this run`` (``cost_usd``: requests sent this time) and ``results cost``
(``results_cost_usd``: what the replies behind its results cost when first paid, cached ones included, from the
cost ledger). Extra graders (``graders`` in the score metrics) count in their stage's figures.
"""

from __future__ import annotations

from typing import Any

from ift_select.reporting.render import Block, Heading, Table

COUNT_KEYS = ("rows", "requests", "cache_hits", "truncated", "tokens_in", "tokens_out")
USD_KEYS = ("cost_usd", "results_cost_usd")
HEADERS = ["stage", *COUNT_KEYS, "spent by this run (USD)", "results cost (USD)", "seconds"]


def _usd(m: dict[str, Any], key: str) -> float | None:
    parts = [m, *m.get("graders", {}).values()]
    values = [p[key] for p in parts if isinstance(p, dict) and p.get(key) is not None]
    return round(sum(values), 6) if values else None


def costs_section(stage_metrics: dict[str, dict[str, Any]]) -> list[Block]:
    rows, totals = [], dict.fromkeys((*USD_KEYS, "seconds"), 0.0)
    for name, m in sorted(stage_metrics.items()):
        if not any(k in m for k in (*COUNT_KEYS, *USD_KEYS, "seconds")):
            continue
        usd = [_usd(m, k) for k in USD_KEYS]
        rows.append([name, *(m.get(k) for k in COUNT_KEYS), *usd, m.get("seconds")])
        for key, value in zip((*USD_KEYS, "seconds"), (*usd, m.get("seconds"))):
            totals[key] += float(value or 0)
    rows.append(["total", *([None] * len(COUNT_KEYS)), round(totals["cost_usd"], 6),
                 round(totals["results_cost_usd"], 6), round(totals["seconds"], 1)])
    caption = ("From metrics/*.json. 'Spent by this run': requests sent this time; 'results cost': what the "
               "replies behind the results cost when first paid, cached ones included (the cost ledger). Local "
               "models cost nothing.")
    return [Heading("Costs and times"), Table(HEADERS, rows, caption=caption)]
