"""The report as a list of blocks, rendered twice: Markdown (figures as files beside it) and a self-contained
HTML page (figures embedded as base64 PNG, inline CSS, no scripts, nothing fetched)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from typing import Any, Union


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str
    warning: bool = False


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class Figure:
    name: str  # file name under the figures directory, e.g. "ws.png"
    alt: str
    png: bytes = field(repr=False, default=b"")


Block = Union[Heading, Para, Table, Figure]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1,h2,h3{line-height:1.2} table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .55em;text-align:right} th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left} caption{caption-side:top;text-align:left;color:#555;
padding-bottom:.3em} img{max-width:100%;height:auto;border:1px solid #eee}
.warning{background:#fff4e5;border-left:4px solid #f0a030;padding:.6em .9em}
figure{margin:1em 0} figcaption{color:#555;font-size:.9em}
"""


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.3e}"
    return str(value)


def to_markdown(title: str, blocks: list[Block], figures_dir: str) -> str:
    out = [f"# {title}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            out += [("> **Warning.** " if block.warning else "") + block.text, ""]
        elif isinstance(block, Table):
            if block.caption:
                out += [f"*{block.caption}*", ""]
            out.append("| " + " | ".join(block.headers) + " |")
            out.append("|" + "|".join("---" for _ in block.headers) + "|")
            for row in block.rows:
                out.append("| " + " | ".join(_cell(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
            out.append("")
        elif isinstance(block, Figure):
            out += [f"![{block.alt}]({figures_dir}/{block.name})", ""]
    return "\n".join(out)


def to_html(title: str, blocks: list[Block]) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>", f"<h1>{esc(title)}</h1>"]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            cls = ' class="warning"' if block.warning else ""
            out.append(f"<p{cls}>{esc(block.text)}</p>")
        elif isinstance(block, Table):
            out.append("<table>")
            if block.caption:
                out.append(f"<caption>{esc(block.caption)}</caption>")
            out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in block.headers) + "</tr>")
            for row in block.rows:
                out.append("<tr>" + "".join(f"<td>{esc(_cell(v))}</td>" for v in row) + "</tr>")
            out.append("</table>")
        elif isinstance(block, Figure):
            data = base64.b64encode(block.png).decode("ascii")
            out.append(f'<figure><img alt="{esc(block.alt)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{esc(block.alt)}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)
