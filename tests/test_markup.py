"""Safe HTML: the element builder escapes, Markdown keeps formatting and drops raw HTML."""

from __future__ import annotations

import pytest

from schemas.status_api import InlineElement
from tests.status_page_support import HtmlAudit
from zeroprobe.web.markup import Html, h, line_nodes, render_inline, render_markdown, safe_href


def test_builder_escapes_text_and_attributes_but_keeps_markup() -> None:
    html = h(
        "a",
        {"href": '/ui/x"><script>', "title": "<b>&", "hidden": True, "data-x": None},
        "<script>alert(1)</script>",
        h("code", None, "a < b"),
    )

    assert html == (
        '<a href="/ui/x&quot;&gt;&lt;script&gt;" title="&lt;b&gt;&amp;" hidden>'
        "&lt;script&gt;alert(1)&lt;/script&gt;<code>a &lt; b</code></a>"
    )
    assert isinstance(html, Html)


@pytest.mark.parametrize(
    "markdown",
    [
        "<script>window.__xss = 1</script>",
        '<img src=x onerror="window.__xss = 1">',
        "[x](javascript:window.__xss=1)",
        "[x](JaVaScRiPt:window.__xss=1)",
        "[x]( javascript:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "![x](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=https://example.com></iframe>",
        '<svg onload="window.__xss=1"></svg>',
        "<style>body{display:none}</style>",
        "| a |\n|:-:|\n| b |",
        "```html\n<script>x</script>\n```",
        "<!-- <script>x</script> -->",
    ],
    ids=[
        "script",
        "img-onerror",
        "javascript-link",
        "mixed-case-scheme",
        "space-before-scheme",
        "vbscript",
        "data-url",
        "image",
        "raw-anchor",
        "iframe",
        "svg-onload",
        "style",
        "aligned-table",
        "fenced-code",
        "comment",
    ],
)
def test_runbook_markdown_cannot_carry_script_or_styles(markdown: str) -> None:
    audit = HtmlAudit(render_markdown(markdown))

    assert audit.unsafe() == []
    assert not audit.tags("style")
    assert all("style" not in attrs for _, attrs in audit.elements)


def test_runbook_markdown_keeps_formatting_and_safe_links() -> None:
    html = render_markdown(
        "# Goal\n\n**Every** secondary within `5 s`.\n\n1. one\n2. [wiki](https://wiki.example.com)"
    )

    assert "<h1>Goal</h1>" in html
    assert "<strong>Every</strong>" in html
    assert "<code>5 s</code>" in html
    assert "<ol>" in html
    audit = HtmlAudit(html)
    (link,) = audit.tags("a")
    assert link["href"] == "https://wiki.example.com"
    assert "noopener" in link["rel"]


@pytest.mark.parametrize(
    ("line", "nodes"),
    [
        ("- Primary db1:27017 replication lag 0ms", ["Primary db1:27017 replication lag 0ms"]),
        (
            "- Secondary `db2:27017` **6120ms**",
            [
                "Secondary ",
                InlineElement(tag="code", children=["db2:27017"]),
                " ",
                InlineElement(tag="strong", children=["6120ms"]),
            ],
        ),
        ("- <b>x</b> & y", ["<b>x</b> & y"]),
        ("- [run](javascript:alert(1))", ["[run](javascript:alert(1))"]),
        (
            "- see [runbook](https://r.example.com/a?b=1)",
            [
                "see ",
                InlineElement(tag="a", href="https://r.example.com/a?b=1", children=["runbook"]),
            ],
        ),
        ("- ![pic](https://example.com/x.png) alt", ["pic alt"]),
        ("no dash *at all*", ["no dash ", InlineElement(tag="em", children=["at all"])]),
    ],
    ids=["plain", "code-and-strong", "raw-html", "javascript-link", "link", "image", "no-dash"],
)
def test_line_markdown_becomes_text_and_allowed_elements(line: str, nodes: list[object]) -> None:
    assert list(line_nodes(line)) == nodes


def test_inline_nodes_render_like_the_page_script_builds_them() -> None:
    html = render_inline(line_nodes('- `a<b>` [x](https://e.example/?q="1") <i>'))

    assert html == (
        "<code>a&lt;b&gt;</code> "
        '<a href="https://e.example/?q=%221%22" rel="noopener noreferrer nofollow">x</a> '
        "&lt;i&gt;"
    )
    forged = InlineElement(tag="a", href="javascript:alert(1)", children=["x"])
    assert render_inline([forged]) == "x"


@pytest.mark.parametrize(
    ("href", "safe"),
    [
        ("https://example.com", True),
        ("http://example.com", True),
        ("mailto:oncall@example.com", True),
        ("/ui/x", True),
        ("javascript:alert(1)", False),
        (" JAVASCRIPT:alert(1)", False),
        ("data:text/html,x", False),
        ("vbscript:x", False),
        ("file:///etc/passwd", False),
    ],
)
def test_safe_href(href: str, safe: bool) -> None:
    assert safe_href(href) is safe
