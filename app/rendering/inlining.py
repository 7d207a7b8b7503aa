"""CSS inlining for every email Broadsheet sends: one function, one set of options.

Mail clients drop or ignore `<style>` blocks (Gmail in some apps, many webmails), so
each rule goes onto the elements it matches. Only the `@media` rules stay behind in a
`<style>` block, with their `!important`: an inline `width:600px` beats any rule of a
style sheet unless that rule is important, so without it a phone gets the desktop
width. The document keeps its doctype: without one a browser (and a webmail that
shows the HTML in a frame) lays it out in quirks mode.

premailer can also copy CSS into presentational attributes (`bgcolor`, `width`,
`height`, `align`, `valign`) on whatever element the rule matched, which writes
`bgcolor` on `<code>` and `width="100%"` or `height="auto"` on `<img>`, none of them
valid. It copies none: the few attributes Outlook needs are written in the templates,
on the table elements where HTML allows them.
"""

from __future__ import annotations

import logging
import re

import premailer

DOCTYPE = "<!DOCTYPE html>"
_LEADING_DOCTYPE = re.compile(r"\A\s*<!doctype\b[^>]*>\s*", re.IGNORECASE)
_PRESENTATIONAL = ["align", "valign", "bgcolor", "width", "height"]

for _name in ("cssutils", "CSSUTILS", "premailer"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


def inline_css(html: str) -> str:
    """The document with its CSS inlined; `@media` rules kept, important, in `<style>`.

    The doctype is taken off before premailer and put back after: premailer keeps it
    only when it is spelled exactly as lxml writes it (`<!doctype html>` is dropped).
    """
    inlined = premailer.transform(
        _LEADING_DOCTYPE.sub("", html, count=1),
        keep_style_tags=False,
        remove_classes=False,
        strip_important=False,
        disable_basic_attributes=_PRESENTATIONAL,
        disable_validation=True,
        allow_network=False,
        allow_insecure_ssl=False,
        allow_loading_external_files=False,
        cssutils_logging_level=logging.CRITICAL,
    )
    return f"{DOCTYPE}\n{_LEADING_DOCTYPE.sub('', str(inlined), count=1)}"
