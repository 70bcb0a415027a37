"""Request text made inert in a card's GitHub-flavoured markdown ``detail``.

A CDS client renders ``detail`` as GFM, often to HTML inside the EHR: text from
the intake (``notes``, ``activity.type``, the EHR's own ``authored``) must show
as the characters typed, never as markup. Every such piece goes through
:func:`escape_markdown`: line breaks (which could start a heading, list or
table) become spaces, ``& < > " '`` become HTML character references (so raw
HTML is never HTML, whether or not the renderer honours backslashes), and every
other ASCII punctuation character GFM gives a meaning to is backslash-escaped.
"""

from __future__ import annotations

import re

from api.fhir._tables import shown

#: ASCII punctuation with a meaning in CommonMark/GFM (emphasis, links, code, lists,
#: headings, tables, strikethrough, autolinks); CommonMark lets any of them be escaped.
_SPECIAL = frozenset("\\`*_{}[]()#+-.!|~:=$^%")
#: What our own texts (rule displays, rationales, advice) need: they hold no markup, so
#: only the characters that would start emphasis, code, a link or HTML are escaped.
_SPECIAL_OWN = frozenset("\\`*_[]|~")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
#: Every character Python (and a browser) may treat as a line or block break.
_BREAKS = re.compile(r"[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")


def escape_markdown(text: str, *, own: bool = False) -> str:
    """``text`` as literal inline GFM: no line breaks, no markup, no raw HTML.

    ``own``: a text of this product (the knowledge base's wording), escaped only as
    far as it needs; request text always gets the full treatment.
    """
    special = _SPECIAL_OWN if own else _SPECIAL
    flat = _BREAKS.sub(" ", shown(text)).strip()  # bidi controls as [U+XXXX] markers
    out: list[str] = []
    for char in flat:
        entity = _ENTITIES.get(char)
        if entity is not None:
            out.append(entity)
        elif char in special:
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


__all__ = ["escape_markdown"]
