"""A tiny document model (headings, tables, paragraphs, lists, images) rendered with tabulate.

The leaderboard is built once as blocks and written in any of the text formats, so the markdown
README, a LaTeX table for a paper and an HTML page say exactly the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence, Union

from tabulate import tabulate

__all__ = ["Heading", "TableBlock", "Paragraph", "Bullets", "Image", "Block", "render_blocks", "TEXT_FORMATS"]

TEXT_FORMATS = ("github", "markdown", "latex", "html")
_TABLEFMT = {"github": "github", "markdown": "pipe", "latex": "latex_booktabs"}


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class TableBlock:
    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    align: Sequence[str] | None = None  # per column: "left" | "right" | "center"
    row_ids: Sequence[str] | None = None  # per row: an anchor the html page gives it (other formats ignore it)


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]


@dataclass(frozen=True)
class Image:
    alt: str
    path: str  # relative to the rendered document


Block = Union[Heading, TableBlock, Paragraph, Bullets, Image]

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(c, c) for c in text)


def _plain(text: str) -> str:
    """Markdown emphasis, code marks and links (their text kept) removed (for LaTeX and titles)."""
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r"\1", text).replace("**", "").replace("`", "")


def _table(block: TableBlock, fmt: str) -> str:
    kwargs: dict[str, Any] = {"disable_numparse": True}
    if block.align:
        kwargs["colalign"] = tuple(block.align)
    rows = [[("" if v is None else str(v)) for v in row] for row in block.rows]
    return tabulate(rows, headers=list(block.headers), tablefmt=_TABLEFMT[fmt], **kwargs)


def render_blocks(blocks: Sequence[Block], fmt: str) -> str:
    """Render blocks as github/markdown or latex text, or a standalone html page (ends with one newline)."""
    if fmt not in TEXT_FORMATS:
        raise ValueError(f"unknown text format {fmt!r}; choose from {', '.join(TEXT_FORMATS)}")
    if fmt == "html":  # a standalone page, not a fragment
        from .html_page import html_page

        title = next((b.text for b in blocks if isinstance(b, Heading)), "DeployBench")
        return html_page(blocks, title=_plain(title))
    parts: list[str] = []
    for b in blocks:
        if isinstance(b, TableBlock):
            parts.append(_table(b, fmt))
        elif fmt in ("github", "markdown"):
            if isinstance(b, Heading):
                parts.append("#" * b.level + " " + b.text)
            elif isinstance(b, Paragraph):
                parts.append(b.text)
            elif isinstance(b, Bullets):
                parts.append("\n".join(f"- {item}" for item in b.items))
            elif isinstance(b, Image):
                parts.append(f"![{b.alt}]({b.path})")
        elif fmt == "latex":
            if isinstance(b, Heading):
                cmd = {1: "section*", 2: "subsection*"}.get(b.level, "subsubsection*")
                parts.append(f"\\{cmd}{{{_latex(_plain(b.text))}}}")
            elif isinstance(b, Paragraph):
                parts.append(_latex(_plain(b.text)))
            elif isinstance(b, Bullets):
                items = "\n".join(f"  \\item {_latex(_plain(i))}" for i in b.items)
                parts.append(f"\\begin{{itemize}}\n{items}\n\\end{{itemize}}")
            elif isinstance(b, Image):
                parts.append(f"% figure: {b.path}")
    return "\n\n".join(parts).rstrip() + "\n"
