"""The leaderboard as one standalone HTML page: inline CSS, sortable tables, figures, notes.

No external resource is fetched (no fonts, scripts or style sheets from the network): the page
opens from a file, offline, and the figures are the PNGs next to it. Clicking a column header, or
focusing it with Tab and pressing Enter or Space, sorts the table by that column (numbers by their
value, so ``3.41 [3.27, 3.51]`` sorts by 3.41 and ``95%`` by 95; a dash sorts last); again reverses
the order. The page uses the window's width (prose keeps a readable measure), headers wrap and carry
their full text as a tooltip, and a long "significantly better than" list is collapsed to its count.
Each second-level heading opens a section with its own anchor; a task filter shows one table's
section, an optimizer filter hides the other rows of every table with an ``optimizer`` column.
"""

from __future__ import annotations

import html
import re
from typing import Sequence

from .document import Block, Bullets, Heading, Image, Paragraph, TableBlock

__all__ = ["html_page", "inline_markdown"]

_CSS = """
:root { --fg: #1d232b; --muted: #5b6570; --line: #d6dbe1; --head: #eef1f5; --accent: #2f6db5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { margin: 0 auto; padding: 24px 20px 64px; max-width: 2400px; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.5em; }
h2 { font-size: 1.3em; margin: 2em 0 0.5em; padding-top: 0.6em; border-top: 2px solid var(--line); }
p, li { max-width: 110ch; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f3f5f7;
       padding: 0 3px; border-radius: 3px; }
nav.toc { background: #f7f9fb; border: 1px solid var(--line); border-radius: 6px; padding: 8px 16px; }
nav.toc ul { margin: 0.3em 0; padding-left: 1.2em; columns: 2; }
.table-wrap { overflow-x: auto; margin: 0.8em 0 1em; }
table { border-collapse: collapse; font-size: 0.9em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 7px; vertical-align: top; }
th { background: var(--head); text-align: left; font-weight: 600; min-width: 3.5em; }
td details summary { cursor: pointer; color: var(--accent); }
h2 a.anchor { color: #9aa3ad; text-decoration: none; font-weight: normal; margin-left: 0.3em; }
h2:hover a.anchor { color: var(--accent); }
th:focus-visible { outline: 2px solid var(--accent); outline-offset: -2px; }
.filters { margin: 0.8em 0; display: flex; gap: 1.5em; flex-wrap: wrap; align-items: center; }
.filters input, .filters select { font: inherit; padding: 2px 6px; }
section[hidden], tr[hidden] { display: none; }
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
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); th.click(); }
      });
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
  // filters: one task's section, and the rows of the optimizers whose name contains one of the words
  var taskFilter = document.getElementById("task-filter");
  var optFilter = document.getElementById("optimizer-filter");
  function applyFilters() {
    var task = taskFilter ? taskFilter.value : "";
    document.querySelectorAll("section[data-task]").forEach(function (sec) {
      sec.hidden = task !== "" && sec.getAttribute("data-task") !== task;
    });
    var words = (optFilter ? optFilter.value : "").toLowerCase().split(/[\\s,]+/).filter(Boolean);
    document.querySelectorAll("table.sortable").forEach(function (table) {
      var col = Array.prototype.map.call(table.tHead.rows[0].cells, function (c) {
        return c.textContent.trim();
      }).indexOf("optimizer");
      if (col < 0) return;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var name = row.cells[col].textContent.toLowerCase();
        row.hidden = words.length > 0 && !words.some(function (w) { return name.indexOf(w) >= 0; });
      });
    });
  }
  if (taskFilter) taskFilter.addEventListener("change", applyFilters);
  if (optFilter) optFilter.addEventListener("input", applyFilters);
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
    """Escape ``text`` for HTML and turn its ``**bold**``, ``*emphasis*``, ```code``` and ``[text](url)``
    marks into tags (a link only to a relative or #fragment address: the page fetches nothing)."""
    out = html.escape(text, quote=False)
    out = re.sub(r"\[([^\]]+)\]\(((?!\w+:)[^)\s\"]+)\)", r'<a href="\2">\1</a>', out)
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


#: a "significantly better than" cell with more names than this is collapsed to its count
_LIST_FOLD = 3


def _cell(header: str, text: str) -> str:
    names = [n for n in text.split(", ") if n]
    if header.startswith("significantly better than") and len(names) > _LIST_FOLD:
        return (f"<details><summary>{len(names)} optimizers</summary>{inline_markdown(text)}</details>")
    return inline_markdown(text)


def _optimizer_link(text: str, anchors: set[str]) -> str:
    """An optimizer cell linked to its line in the Optimizers table (``tba[T_init=0.5] (2 errored)``
    links to ``#optimizer-tba``), or as it is when there is none."""
    name = text.split("[", 1)[0].split(" (", 1)[0].strip()
    anchor = f"optimizer-{name}"
    if anchor not in anchors:
        return inline_markdown(text)
    return f'<a href="#{html.escape(anchor)}">{inline_markdown(text)}</a>'


def _table(block: TableBlock, anchors: set[str] = frozenset()) -> str:
    align = list(block.align or ["left"] * len(block.headers))
    head = "".join(f'<th scope="col" tabindex="0" title="{html.escape(_plain_text(str(h)))} (click, or Enter, '
                   f'to sort)">{inline_markdown(str(h))}</th>' for h in block.headers)
    body = []
    ids = list(block.row_ids or [])
    for n, row in enumerate(block.rows):
        cells = []
        for i, v in enumerate(row):
            cls = ' class="num"' if i < len(align) and align[i] == "right" else ""
            header = str(block.headers[i]) if i < len(block.headers) else ""
            text = "" if v is None else str(v)
            linked = header in ("optimizer", "a", "b", "better") and not ids
            cells.append(f"<td{cls}>{_optimizer_link(text, anchors) if linked else _cell(header, text)}</td>")
        row_id = f' id="{html.escape(ids[n])}"' if n < len(ids) else ""
        body.append(f"<tr{row_id}>" + "".join(cells) + "</tr>")
    return (f'<div class="table-wrap"><table class="sortable">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(body) + "\n</tbody>\n</table></div>")


def _plain_text(text: str) -> str:
    return re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text).replace("**", "").replace("`", "")


#: second-level headings that are not a task's table
_GENERAL_SECTIONS = ("Summary", "Across tasks", "Optimizers", "Reproducing these results",
                     "Problems found while reading")


def _task_of(heading: str) -> str | None:
    """The task label of a table's heading (``edge_tight@edge (B=25)`` → ``edge_tight@edge``)."""
    if heading in _GENERAL_SECTIONS:
        return None
    return heading.split(" (", 1)[0]


def _filters(tasks: list[str]) -> str:
    options = "".join(f'<option value="{html.escape(t)}">{html.escape(t)}</option>' for t in tasks)
    return ('<div class="filters" role="search">'
            f'<label>Task <select id="task-filter"><option value="">all tables</option>{options}</select></label>'
            '<label>Optimizers <input id="optimizer-filter" type="search" placeholder="e.g. cbo, tpe" '
            'aria-label="show only the rows of optimizers whose name contains one of these words"></label></div>')


def html_page(blocks: Sequence[Block], *, title: str) -> str:
    """A complete HTML5 document for ``blocks`` (deterministic: same blocks, same bytes)."""
    taken: set[str] = set()
    ids = {i: _slug(b.text, taken) for i, b in enumerate(blocks) if isinstance(b, Heading)}
    toc = [f'<li><a href="#{ids[i]}">{inline_markdown(b.text)}</a></li>'
           for i, b in enumerate(blocks) if isinstance(b, Heading) and b.level == 2]
    tasks = list(dict.fromkeys(t for b in blocks if isinstance(b, Heading) and b.level == 2
                               for t in [_task_of(b.text)] if t))
    parts: list[str] = []
    figures: list[str] = []
    open_section = False
    anchors = {i for b in blocks if isinstance(b, TableBlock) for i in (b.row_ids or ())}

    def flush() -> None:
        if figures:
            parts.append('<div class="figures">\n' + "\n".join(figures) + "\n</div>")
            figures.clear()

    for i, b in enumerate(blocks):
        if not isinstance(b, Image):
            flush()
        if isinstance(b, Heading):
            level = min(max(b.level, 1), 6)
            if level == 2:
                if open_section:
                    parts.append("</section>")
                task = _task_of(b.text)
                parts.append(f'<section data-task="{html.escape(task)}">' if task else "<section>")
                open_section = True
                parts.append(f'<h2 id="{ids[i]}">{inline_markdown(b.text)}<a class="anchor" href="#{ids[i]}" '
                             f'aria-label="link to this section">#</a></h2>')
            else:
                parts.append(f'<h{level} id="{ids[i]}">{inline_markdown(b.text)}</h{level}>')
            if b.level == 1 and toc:
                parts.append('<nav class="toc"><strong>Contents</strong>' + (_filters(tasks) if tasks else "")
                             + "<ul>\n" + "\n".join(toc) + "\n</ul></nav>")
        elif isinstance(b, TableBlock):
            parts.append(_table(b, anchors))
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
    if open_section:
        parts.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(parts) + f"\n</main>\n<script>{_JS}</script>\n</body>\n</html>\n")
