"""Reads the accuracy report's HTML back: every figure it shows, with its JSON key."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from ctr_assets.reporting.html_parts import lookup

_VOID = {"meta", "br", "img", "hr", "input", "link"}
_DIGIT = re.compile(r"[0-9]")


class _Page(HTMLParser):
    """Collects (data-key, shown text) pairs, and any digit shown in a table cell, a figure
    or a card outside a tagged element. Charts (SVG) are left out: their tick labels are
    scales, not figures."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tagged: list[tuple[str, str]] = []
        self.untagged_digits: list[str] = []
        self._open: list[tuple[str, str | None, bool, list[str]]] = []
        self._svg = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self._svg += 1
        if tag in _VOID or self._svg:
            return
        found = dict(attrs)
        holds_figures = tag in ("td", "dd") or "figure" in (found.get("class") or "").split()
        self._open.append((tag, found.get("data-key"), holds_figures, []))

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg -= 1
            return
        if tag in _VOID or self._svg:
            return
        while self._open:
            name, key, _, text = self._open.pop()
            if key is not None:
                self.tagged.append((key, "".join(text)))
                if self._open:  # a tagged element's text also belongs to its parent
                    self._open[-1][3].extend(text)
            elif self._open:
                self._open[-1][3].extend(text)
            if name == tag:
                return

    def handle_data(self, data: str) -> None:
        if self._svg or not self._open:
            return
        self._open[-1][3].append(data)
        if any(key for _, key, _, _ in self._open):
            return
        if any(cell for _, _, cell, _ in self._open) and _DIGIT.search(data):
            self.untagged_digits.append(data.strip())


def shown_figures(html: str) -> tuple[list[tuple[str, str]], list[str]]:
    page = _Page()
    page.feed(html)
    page.close()
    return page.tagged, page.untagged_digits


def _number(text: str) -> tuple[float, float]:
    """The number a formatted figure shows, and how far rounding may have moved it."""
    shown = text.strip().replace(",", "").replace("×", "").removesuffix(" s")
    scale = 1.0
    if shown.endswith("%"):
        shown, scale = shown[:-1], 0.01
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    return float(shown) * scale, 0.5 * 10.0**-decimals * scale * 1.0001


def assert_page_shows_json(html: str, document: dict[str, Any]) -> int:
    """Every figure of the page is its JSON value (rounded as shown), and no figure is
    shown without its key. Returns how many figures were compared."""
    tagged, untagged = shown_figures(html)
    assert not untagged, f"figures shown without a JSON key: {untagged[:10]}"
    for key, text in tagged:
        value = lookup(document, key)
        assert value is not None, f"{key} is shown as {text!r} but is null in the JSON"
        if isinstance(value, bool) or not isinstance(value, int | float):
            assert text == str(value), f"{key}: page {text!r}, JSON {value!r}"
            continue
        number, tolerance = _number(text)
        assert abs(number - value) <= tolerance, f"{key}: page {text!r}, JSON {value!r}"
    return len(tagged)
