"""Open311 answers in JSON or XML, chosen by the path suffix (``/services.xml``).

XML is built as an element tree (the stdlib escapes text), with the spec's element names: a
view names its root and item elements (``service_requests``/``request``); nested lists take
their items' names from ``ITEM_NAMES`` (``attributes``/``attribute``); errors are always
``errors``/``error``.
"""

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer

ITEM_NAMES = {
    "areas": "area",
    "answers": "answer",
    "attributes": "attribute",
    "endpoints": "endpoint",
    "errors": "error",
    "formats": "format",
    "notes": "note",
    "services": "service",
    "values": "value",
}
XML_DECLARATION = b'<?xml version="1.0" encoding="utf-8"?>\n'
# Characters XML 1.0 cannot carry at all, even escaped (control characters but tab, LF, CR).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class Open311JSONRenderer(JSONRenderer):
    media_type = "application/json"
    format = "json"
    charset = "utf-8"


class Open311XMLRenderer(BaseRenderer):
    media_type = "text/xml"
    format = "xml"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        context = renderer_context or {}
        response = context.get("response")
        view = context.get("view")
        if response is not None and response.status_code >= 400:
            root, item = "errors", "error"
        else:
            root = getattr(view, "xml_root", "") or "response"
            item = getattr(view, "xml_item", "") or "item"
        element = _element(root, data, item)
        return XML_DECLARATION + ET.tostring(element, encoding="utf-8", xml_declaration=False)


def _element(tag: str, value: Any, item_tag: str | None = None) -> ET.Element:
    element = ET.Element(tag)
    if isinstance(value, Mapping):
        for key, child in value.items():
            element.append(_element(str(key), child))
    elif isinstance(value, list | tuple):
        name = item_tag or ITEM_NAMES.get(tag) or (tag[:-1] if tag.endswith("s") else "item")
        for child in value:
            element.append(_element(name, child))
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = _NOT_XML.sub("\ufffd", str(value))
    return element


class SuffixNegotiation(DefaultContentNegotiation):
    """The path suffix alone picks the format (no Accept header or ?format= surprises); an
    address without one (an unknown endpoint) answers in JSON."""

    def select_renderer(
        self, request: Any, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        candidates = list(renderers)
        wanted = format_suffix or "json"
        for renderer in candidates:
            if renderer.format == wanted:
                return renderer, renderer.media_type
        return candidates[0], candidates[0].media_type
