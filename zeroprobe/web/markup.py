"""Safe HTML for the status page: an element builder that escapes everything, and Markdown.

Spec descriptions and bodies, member names, labels and annotations all come from outside;
none of it ever reaches the page as markup. Text is escaped by `h`; Markdown is parsed with raw
HTML disabled, links are limited to http(s), mailto and relative URLs, and the block Markdown of
runbooks is sanitized once more with nh3 (Ammonia) against a short allow-list of tags.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from schemas.status_api import InlineElement, InlineTag

SAFE_URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"
_VOID_TAGS = frozenset({"br", "hr", "img", "input", "link", "meta", "wbr"})
_RUNBOOK_TAGS = frozenset(
    {
        *("p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "hr", "br"),
        *("ul", "ol", "li", "code", "em", "strong", "s", "a"),
        *("table", "thead", "tbody", "tr", "th", "td"),
    }
)

InlineNode = str | InlineElement
# Inline Markdown nodes that become an element of the same name around their children.
_WRAPPING_TAGS: dict[str, InlineTag] = {"strong": "strong", "em": "em", "s": "s"}


class Html(str):
    """Markup safe to emit as it is: made only by `h`, `escape` and the Markdown renderers."""

    __slots__ = ()


Child = str | Html | None | Iterable["Child"]
AttrValue = str | int | float | bool | None


def escape(text: str) -> Html:
    """`text` as HTML text (quotes too, so it is safe in attribute values)."""
    return Html(html.escape(text, quote=True))


def h(tag: str, attrs: Mapping[str, AttrValue] | None = None, *children: Child) -> Html:
    """One element; attribute values and str children are escaped, Html children kept.

    An attribute that is None or False is left out; True writes the bare attribute name.
    """
    parts = [f"<{tag}"]
    for name, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        if value is True:
            parts.append(f" {name}")
        else:
            parts.append(f' {name}="{html.escape(str(value), quote=True)}"')
    parts.append(">")
    if tag not in _VOID_TAGS:
        parts.extend(_render_children(children))
        parts.append(f"</{tag}>")
    return Html("".join(parts))


def join(children: Iterable[Child]) -> Html:
    """Several children as one piece of markup."""
    return Html("".join(_render_children(children)))


def _render_children(children: Iterable[Child]) -> Iterable[str]:
    for child in children:
        if child is None:
            continue
        if isinstance(child, Html):
            yield child
        elif isinstance(child, str):
            yield escape(child)
        else:
            yield from _render_children(child)


def safe_href(href: str) -> bool:
    """True for http(s), mailto and relative URLs: never javascript:, data:, vbscript: ..."""
    try:
        scheme = urlsplit(href.strip()).scheme.lower()
    except ValueError:
        return False
    return scheme == "" or scheme in SAFE_URL_SCHEMES


def _image_as_alt_text(self: Any, tokens: Sequence[Any], idx: int, options: Any, env: Any) -> str:
    # A runbook image would be fetched from anywhere: show its alt text instead.
    return html.escape(str(tokens[idx].content))


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_alt_text)
    return md


_MD = _markdown()


@functools.lru_cache(maxsize=256)
def render_markdown(text: str) -> Html:
    """Block Markdown (a spec's body: goal, runbook) as sanitized HTML."""
    rendered = _MD.render(text)
    return Html(
        nh3.clean(
            rendered,
            tags=set(_RUNBOOK_TAGS),
            attributes={"a": {"href"}, "ol": {"start"}},
            url_schemes=set(SAFE_URL_SCHEMES),
            link_rel=LINK_REL,
            strip_comments=True,
        )
    )


@functools.lru_cache(maxsize=4096)
def line_nodes(text: str) -> tuple[InlineNode, ...]:
    """One actionBody line (`- ...`) parsed as inline Markdown into text and allowed elements."""
    body = text[2:] if text.startswith(("- ", "* ")) else text
    root = SyntaxTreeNode(_MD.parseInline(body.strip()))
    nodes: list[InlineNode] = []
    for inline in root.children:
        nodes.extend(_inline(inline.children))
    return tuple(nodes)


def _inline(tree: Iterable[SyntaxTreeNode]) -> list[InlineNode]:
    nodes: list[InlineNode] = []
    for node in tree:
        kind = node.type
        if kind == "text":
            _append_text(nodes, node.content)
        elif kind == "code_inline":
            nodes.append(InlineElement(tag="code", children=[node.content]))
        elif (tag := _WRAPPING_TAGS.get(kind)) is not None:
            nodes.append(InlineElement(tag=tag, children=_inline(node.children)))
        elif kind == "link" and safe_href(str(node.attrs.get("href", ""))):
            href = str(node.attrs["href"])
            nodes.append(InlineElement(tag="a", href=href, children=_inline(node.children)))
        elif kind == "hardbreak":
            nodes.append(InlineElement(tag="br"))
        elif kind == "softbreak":
            _append_text(nodes, " ")
        elif node.children:
            # An image (its alt text), a refused link, anything a plugin may add: its text.
            for child in _inline(node.children):
                if isinstance(child, str):
                    _append_text(nodes, child)
                else:
                    nodes.append(child)
        else:
            _append_text(nodes, node.content)
    return nodes


def _append_text(nodes: list[InlineNode], text: str) -> None:
    if nodes and isinstance(nodes[-1], str):
        nodes[-1] += text
    elif text:
        nodes.append(text)


def render_inline(nodes: Iterable[InlineNode]) -> Html:
    """Inline nodes as HTML, the way the page's script builds them with DOM calls."""
    parts: list[Html] = []
    for node in nodes:
        if isinstance(node, str):
            parts.append(escape(node))
        elif node.tag == "a":
            if node.href is not None and safe_href(node.href):
                parts.append(
                    h("a", {"href": node.href, "rel": LINK_REL}, render_inline(node.children))
                )
            else:
                parts.append(render_inline(node.children))
        else:
            parts.append(h(node.tag, None, render_inline(node.children)))
    return Html("".join(parts))
