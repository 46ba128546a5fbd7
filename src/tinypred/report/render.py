"""Rendering a report: one list of blocks, written as Markdown and as a self-contained HTML page.

A block is a tuple: ("h1" | "h2" | "p", text), ("list", [items]), ("table", headers, rows) or
("img", path, caption). Both renderers read the same blocks, so the two formats always agree.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

Block = tuple


def render_markdown(blocks: list[Block]) -> str:
    """The blocks as Markdown; images are linked by file name (they sit beside the report)."""
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2"):
            out.append(f"{'#' if kind == 'h1' else '##'} {rest[0]}")
        elif kind == "p":
            out.append(rest[0])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in rest[0]))
        elif kind == "table":
            headers, rows = rest
            out.append(
                "\n".join(
                    [
                        "| " + " | ".join(headers) + " |",
                        "|" + "---|" * len(headers),
                        *("| " + " | ".join(row) + " |" for row in rows),
                    ]
                )
            )
        elif kind == "img":
            out.append(f"![{rest[1]}]({Path(rest[0]).name})")
    return "\n\n".join(out) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.85em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f2f2f2}img{max-width:100%}
figure{margin:1em 0}figcaption{color:#555;font-size:.9em}li{margin:.3em 0}
.pass{color:#1a7f37}.fail{color:#c00}"""


def render_html(blocks: list[Block], base: Path) -> str:
    """A self-contained page: every image (read from `base`) inlined as a data URI, nothing external."""
    esc = html.escape
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>tinypred report</title>",
        f"<style>{CSS}</style></head><body>",
    ]
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "p"):
            out.append(f"<{kind}>{esc(rest[0])}</{kind}>")
        elif kind == "list":
            items = "".join(
                f"<li class='{'pass' if item.startswith('PASS') else 'fail'}'>{esc(item)}</li>"
                if item.startswith(("PASS", "FAIL"))
                else f"<li>{esc(item)}</li>"
                for item in rest[0]
            )
            out.append(f"<ul>{items}</ul>")
        elif kind == "table":
            headers, rows = rest
            head = "".join(f"<th>{esc(h)}</th>" for h in headers)
            body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((base / Path(rest[0]).name).read_bytes()).decode()
            out.append(
                f"<figure><img alt='{esc(rest[1])}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(rest[1])}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
