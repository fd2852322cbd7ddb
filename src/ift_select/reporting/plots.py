"""The report's figures (matplotlib, Agg): each function takes plain data and returns PNG bytes."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

WTL_COLORS = {"win": "#4c9a2a", "tie": "#b8b8b8", "lose": "#c0392b"}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def score_histogram(hist: pd.DataFrame, tau: float | None, title: str) -> bytes:
    """AlpaGasus Fig. 4: rows per grader-score bin; ``hist`` has ``score`` (bin start), ``width`` and one
    count column per group (e.g. clean/flawed, or rows), stacked; ``tau`` is marked."""
    groups = [c for c in hist.columns if c not in ("score", "width")]
    colors = {"clean": "#4c72b0", "flawed": "#dd8452", "rows": "#4c72b0"}
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    bottom = np.zeros(len(hist))
    for group in groups:
        ax.bar(hist["score"], hist[group], width=hist["width"], bottom=bottom, align="edge",
               color=colors.get(group), edgecolor="white", label=group)
        bottom += hist[group].to_numpy()
    if tau is not None:
        ax.axvline(tau, color="black", linestyle="--", linewidth=1.2)
        ax.text(tau, ax.get_ylim()[1] * 0.95, f"  tau = {tau:g} (kept: score >= tau)", va="top", fontsize=8)
    ax.set_xlabel("grader score")
    ax.set_ylabel("rows")
    ax.set_title(title, fontsize=10)
    if len(groups) > 1:
        ax.legend(fontsize=8)
    return _png(fig)


def ws_bars(ws: pd.DataFrame) -> bytes:
    """AlpaGasus Fig. 5: WS per test set (groups) and pair (bars), bootstrap CI whiskers, even line at 1."""
    sets = sorted(ws["test_set"].unique())
    pairs = sorted(ws["pair"].unique())
    width = 0.8 / max(len(pairs), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(sets) * max(1, len(pairs)) ** 0.5 + 2), 3.8))
    for k, pair in enumerate(pairs):
        rows = ws[ws["pair"] == pair].set_index("test_set").reindex(sets)
        x = np.arange(len(sets)) + (k - (len(pairs) - 1) / 2) * width
        lo = (rows["ws"] - rows["ws_low"]).clip(lower=0).fillna(0)
        hi = (rows["ws_high"] - rows["ws"]).clip(lower=0).fillna(0)
        ax.bar(x, rows["ws"].fillna(0), width=width * 0.95, label=pair, yerr=[lo, hi], capsize=3)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(np.arange(len(sets)), sets)
    ax.set_ylim(0, 2)
    ax.set_ylabel("winning score (1 = even)")
    ax.set_title("WS per test set (95% bootstrap CI)", fontsize=10)
    ax.legend(fontsize=8)
    return _png(fig)


def wtl_bars(wtl: pd.DataFrame, label_col: str = "label", title: str = "Win / tie / lose") -> bytes:
    """Horizontal stacked bars of win/tie/lose shares, one bar per row of ``wtl`` (counts printed inside)."""
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(wtl) + 1.4))
    totals = wtl[["win", "tie", "lose"]].sum(axis=1).replace(0, np.nan)
    left = np.zeros(len(wtl))
    y = np.arange(len(wtl))
    for key in ("win", "tie", "lose"):
        share = (wtl[key] / totals).fillna(0).to_numpy()
        ax.barh(y, share, left=left, color=WTL_COLORS[key], label=key)
        for yi, (s, l_, n) in enumerate(zip(share, left, wtl[key])):
            if s > 0.06:
                ax.text(l_ + s / 2, yi, str(int(n)), ha="center", va="center", fontsize=8, color="white")
        left += share
    ax.set_yticks(y, wtl[label_col])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of items")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _png(fig)


def agreement_bars(rows: list[tuple[str, str, float]]) -> bytes:
    """Agreement with the human majority: (group, label, value) bars, chance references per group."""
    frame = pd.DataFrame(rows, columns=["group", "label", "value"])
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(frame) + 1.3))
    y = np.arange(len(frame))
    palette = {g: plt.get_cmap("tab10")(k % 10) for k, g in enumerate(frame["group"].unique())}
    ax.barh(y, frame["value"], color=[palette[g] for g in frame["group"]])
    for yi, v in zip(y, frame["value"]):
        ax.text(v + 0.01, yi, f"{v:.1%}", va="center", fontsize=8)
    ax.set_yticks(y, [f"{g}: {lbl}" for g, lbl in zip(frame["group"], frame["label"])], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("agreement with the 2-of-3 human majority (PandaLM human-annotated pairs)")
    return _png(fig)


def arm_score_histograms(scores: dict[str, np.ndarray], tau: float | None) -> bytes:
    """One panel per arm: the grader scores of the rows it selected (0-5, 20 bins), tau marked."""
    fig, axes = plt.subplots(1, len(scores), figsize=(2.4 * len(scores) + 1.2, 2.8), sharex=True, squeeze=False)
    edges = np.linspace(0, 5, 21)
    for ax, (arm, values) in zip(axes[0], scores.items()):
        ax.hist(values, bins=edges, color="#4c72b0", edgecolor="white")
        if tau is not None:
            ax.axvline(tau, color="black", linestyle="--", linewidth=1.0)
        mean = f", mean {values.mean():.2f}" if len(values) else ""
        ax.set_title(f"{arm} ({len(values)} scored{mean})", fontsize=9)
        ax.set_xlabel("grader score", fontsize=8)
    axes[0][0].set_ylabel("rows")
    return _png(fig)


def balance_bars(table: pd.DataFrame, arms: list[str], title: str) -> bytes:
    """Grouped bars: the share of each group's pool rows that each arm kept; dashed lines at each arm's
    overall share (the ``all`` row). A bar under its line means the arm filtered that group harder."""
    groups = table[table["group"] != "all"]
    overall = table.set_index("group").loc["all"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) + 2), 3.6))
    width = 0.8 / max(len(arms), 1)
    x = np.arange(len(groups))
    for k, arm in enumerate(arms):
        color = plt.get_cmap("tab10")(k % 10)
        ax.bar(x + (k - (len(arms) - 1) / 2) * width, groups[f"{arm} share"], width=width * 0.95, label=arm,
               color=color)
        ax.axhline(overall[f"{arm} share"], color=color, linestyle="--", linewidth=0.9)
    ax.set_xticks(x, [f"{g}\n({n})" for g, n in zip(groups["group"], groups["pool"])], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of the group kept")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _png(fig)


def ws_against_param(points: pd.DataFrame, param: str, title: str) -> bytes:
    """AlpaGasus' threshold ablation: WS (with its interval) per experiment against ``param``; 1 = parity."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    numeric = pd.to_numeric(points["value"], errors="coerce")
    x = numeric if numeric.notna().all() else pd.Series(range(len(points)), dtype=float)
    low = (points["ws"] - pd.to_numeric(points["ws_low"], errors="coerce")).fillna(0).clip(lower=0)
    high = (pd.to_numeric(points["ws_high"], errors="coerce") - points["ws"]).fillna(0).clip(lower=0)
    ax.errorbar(x, points["ws"], yerr=[low, high], fmt="o-", capsize=4, color="#4c72b0")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    if numeric.isna().any():
        ax.set_xticks(list(x), [str(v) for v in points["value"]], rotation=20)
    ax.set_xlabel(param)
    ax.set_ylabel("WS (1 = parity)")
    ax.set_title(title, fontsize=10)
    return _png(fig)
