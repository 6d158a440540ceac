"""The leaderboard as one standalone HTML page: inline CSS, sortable tables, figures, notes.

No external resource is fetched (no fonts, scripts or style sheets from the network): the page
opens from a file, offline, and the figures are the PNGs next to it. Clicking a column header
sorts the table by that column (numbers by their value, so ``3.41 [3.27, 3.51]`` sorts by 3.41 and
``95%`` by 95; a dash sorts last); clicking again reverses the order.
"""

from __future__ import annotations

import html
import re
from typing import Sequence

from .document import Block, Bullets, Heading, Image, Paragraph, Table

__all__ = ["html_page", "inline_markdown"]

_CSS = """
:root { --fg: #1d232b; --muted: #5b6570; --line: #d6dbe1; --head: #eef1f5; --accent: #2f6db5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.5em; }
h2 { font-size: 1.3em; margin: 2em 0 0.5em; padding-top: 0.6em; border-top: 2px solid var(--line); }
p, li { max-width: 110ch; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f3f5f7;
       padding: 0 3px; border-radius: 3px; }
nav.toc { background: #f7f9fb; border: 1px solid var(--line); border-radius: 6px; padding: 8px 16px; }
nav.toc ul { margin: 0.3em 0; padding-left: 1.2em; columns: 2; }
.table-wrap { overflow-x: auto; margin: 0.8em 0 1em; }
table { border-collapse: collapse; font-size: 0.9em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 9px; vertical-align: top; }
th { background: var(--head); text-align: left; font-weight: 600; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #9aa3ad; font-size: 0.85em; }
table.sortable th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--accent); }
table.sortable th[aria-sort="descending"]::after { content: " \\2193"; color: var(--accent); }
td.num { text-align: right; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
tbody tr:hover { background: #eef4fb; }
ul.notes { color: var(--muted); font-size: 0.9em; padding-left: 1.3em; }
ul.notes strong { color: var(--fg); }
p.provenance { color: var(--muted); font-size: 0.88em; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px; background: #fff; }
figure img { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 0.85em; margin-top: 4px; }
figure.missing { border-color: #b33f40; }
"""

_JS = """
(function () {
  function key(text) {
    var t = text.trim();
    if (t === "" || t === "\\u2014") return null;
    var m = t.replace(/\\u2212/g, "-").match(/^[<>]?\\s*(-?\\d+(?:\\.\\d+)?(?:e[-+]?\\d+)?)/i);
    return m ? parseFloat(m[1]) : t.toLowerCase();
  }
  function compare(a, b) {
    if (a === null) return b === null ? 0 : 1;
    if (b === null) return -1;
    if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
    return typeof a === "number" ? -1 : 1;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
          return { row: row, i: i, k: key(row.cells[col].textContent) };
        });
        rows.sort(function (x, y) {
          var c = compare(x.k, y.k);
          if (x.k !== null && y.k !== null && !asc) c = -c;
          return c || x.i - y.i;
        });
        rows.forEach(function (r) { body.appendChild(r.row); });
      });
    });
  });
  // once everything has loaded, say which figures could not be shown (a missing or broken file)
  window.addEventListener("load", function () {
    document.querySelectorAll("figure img").forEach(function (img) {
      img.setAttribute("data-natural-width", String(img.naturalWidth));
      if (!img.naturalWidth) {
        img.parentNode.classList.add("missing");
        img.parentNode.querySelector("figcaption").textContent += " (figure not found: " + img.getAttribute("src") + ")";
      }
    });
  });
})();
"""


def inline_markdown(text: str) -> str:
    """Escape ``text`` for HTML and turn its ``**bold**``, ``*emphasis*`` and ```code``` marks into tags."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*?)\*(?![\w*])", r"<em>\1</em>", out)


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^0-9a-z]+", "-", text.lower()).strip("-") or "section"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def _table(block: Table) -> str:
    align = list(block.align or ["left"] * len(block.headers))
    head = "".join(f'<th scope="col">{inline_markdown(str(h))}</th>' for h in block.headers)
    body = []
    for row in block.rows:
        cells = []
        for i, v in enumerate(row):
            cls = ' class="num"' if i < len(align) and align[i] == "right" else ""
            cells.append(f"<td{cls}>{inline_markdown('' if v is None else str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="table-wrap"><table class="sortable">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(body) + "\n</tbody>\n</table></div>")


def html_page(blocks: Sequence[Block], *, title: str) -> str:
    """A complete HTML5 document for ``blocks`` (deterministic: same blocks, same bytes)."""
    taken: set[str] = set()
    ids = {i: _slug(b.text, taken) for i, b in enumerate(blocks) if isinstance(b, Heading)}
    toc = [f'<li><a href="#{ids[i]}">{inline_markdown(b.text)}</a></li>'
           for i, b in enumerate(blocks) if isinstance(b, Heading) and b.level == 2]
    parts: list[str] = []
    figures: list[str] = []

    def flush() -> None:
        if figures:
            parts.append('<div class="figures">\n' + "\n".join(figures) + "\n</div>")
            figures.clear()

    for i, b in enumerate(blocks):
        if not isinstance(b, Image):
            flush()
        if isinstance(b, Heading):
            level = min(max(b.level, 1), 6)
            parts.append(f'<h{level} id="{ids[i]}">{inline_markdown(b.text)}</h{level}>')
            if b.level == 1 and toc:
                parts.append('<nav class="toc"><strong>Tables</strong><ul>\n' + "\n".join(toc) + "\n</ul></nav>")
        elif isinstance(b, Table):
            parts.append(_table(b))
        elif isinstance(b, Paragraph):
            cls = ' class="provenance"' if b.text.startswith("**Provenance**") else ""
            parts.append(f"<p{cls}>{inline_markdown(b.text)}</p>")
        elif isinstance(b, Bullets):
            parts.append('<ul class="notes">\n' + "\n".join(f"<li>{inline_markdown(t)}</li>" for t in b.items)
                         + "\n</ul>")
        elif isinstance(b, Image):
            figures.append(f'<figure><img src="{html.escape(b.path)}" alt="{html.escape(b.alt)}">'
                           f"<figcaption>{html.escape(b.alt)}</figcaption></figure>")
    flush()
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(parts) + f"\n</main>\n<script>{_JS}</script>\n</body>\n</html>\n")
