"""The HTML of every report: one page skeleton and style sheet, escaping, tables, embedded figures."""

from __future__ import annotations

import base64
import html
import io

from typing import Iterable

import numpy as np

__all__ = ["CSS", "escape", "number", "cell", "kv_table", "grid_table", "png_bytes", "figure_html", "page"]

#: The style sheet of every page. Readings use ``<div class='reading fine|warning|info'>``,
#: tables ``class='kv'`` (two columns: name, value) or ``class='grid'``, notes ``class='meta'``.
CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1.05em}
.meta{color:#555;font-size:.92em}
.reading{padding:.7em 1em;border-radius:6px;margin:.8em 0;border-left:5px solid #999;background:#f6f6f6}
.reading.fine{border-color:#2ca02c;background:#eef8ee}.reading.warning{border-color:#d62728;background:#fdeeee}
.reading.info{border-color:#1f77b4;background:#eef4fb}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
table.kv th{background:#fafafa;font-weight:600;width:45%}
table.grid th{background:#fafafa}
figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#777;font-size:.8em}
pre{background:#f8f8f8;padding:1em;overflow-x:auto;font-size:.8em}
code{background:#f3f3f3;padding:0 .2em}
"""


def escape(text: object) -> str:
    """``str(text)`` with HTML special characters (quotes included) escaped.

    Parameters
    ----------
    text : object
        Any value; its ``str`` is escaped.

    Returns
    -------
    str
        The escaped text, safe inside an element or a quoted attribute.
    """
    return html.escape(str(text), quote=True)


def number(value: object) -> str:
    """A number with 4 significant digits; "n/a" for None, NaN and infinities; other values escaped.

    Parameters
    ----------
    value : object
        A number (anything ``float`` accepts), None, or another value.

    Returns
    -------
    str
        The formatted number, ``"n/a"``, or the escaped ``str(value)``.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a" if value is None else escape(value)
    return "n/a" if not np.isfinite(v) else f"{v:.4g}"


def cell(value: object) -> str:
    """A table cell's content: floats with 4 significant digits, None as "n/a", the rest escaped.

    Parameters
    ----------
    value : object
        The cell's value.

    Returns
    -------
    str
        HTML text of the cell (without the ``<td>`` tag).
    """
    if isinstance(value, float):
        return f"{value:.4g}"
    if value is None:
        return "n/a"
    return escape(value)


def kv_table(pairs: Iterable[tuple[object, object]]) -> str:
    """A two-column table of (name, value) pairs.

    Parameters
    ----------
    pairs : iterable of (object, object)
        The rows: the name (escaped) and the value (:func:`cell`).

    Returns
    -------
    str
        A ``<table class='kv'>`` element.
    """
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{cell(v)}</td></tr>" for k, v in pairs)
    return f"<table class='kv'>{rows}</table>"


def grid_table(records: list[dict], columns: list[str], headers: list[str] | None = None) -> str:
    """A table with one row per record (dict) and the given columns (``headers`` as their titles).

    Parameters
    ----------
    records : list of dict
        The rows; a key missing from a record gives ``"n/a"``.
    columns : list of str
        The keys shown, in order.
    headers : list of str or None, default=None
        Column titles; None: the column keys.

    Returns
    -------
    str
        A ``<table class='grid'>`` element.
    """
    head = "".join(f"<th>{escape(h)}</th>" for h in (headers or columns))
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in records)
    return f"<table class='grid'><tr>{head}</tr>{body}</table>"


def png_bytes(fig, dpi: int = 120) -> bytes:
    """A matplotlib figure as PNG bytes (tight bounding box).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure (not closed).
    dpi : int, default=120
        Resolution, dots per inch.

    Returns
    -------
    bytes
        The PNG file's contents.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def figure_html(name: str, png: bytes) -> str:
    """A ``<figure>`` embedding ``png`` (base64), captioned ``<name>.png``.

    Parameters
    ----------
    name : str
        The figure's name (its alt text and caption).
    png : bytes
        A PNG file's contents (:func:`png_bytes`).

    Returns
    -------
    str
        A ``<figure>`` element.
    """
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure><img alt='{escape(name)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{escape(name)}.png</figcaption></figure>")


def page(title: str, body: str, *, heading: str | None = None) -> str:
    """A self-contained HTML page with the style sheet :data:`CSS`.

    Parameters
    ----------
    title : str
        The page's ``<title>`` (escaped).
    body : str
        HTML inserted as is after the heading.
    heading : str or None, default=None
        The ``<h1>`` (escaped); None: the title.

    Returns
    -------
    str
        The whole HTML document.
    """
    return "\n".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{escape(heading or title)}</h1>",
        body,
        "</body></html>",
    ])
