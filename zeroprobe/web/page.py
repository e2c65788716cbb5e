"""The status page: server-rendered HTML at / and /ui/{service_id}, plus its static files.

The HTML is complete without script. `static/app.js` then refreshes it from the JSON API every
10 s (`?refresh=SECONDS` changes that), ticks the ages, filters "problems only" and shows a
banner when the service stops answering. It builds every node with DOM calls and textContent,
mirroring `probe_card` below; the Content-Security-Policy lets only that file run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.resources
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from aiohttp import web

from schemas.durations import format_duration
from schemas.status_api import HistoryPoint, ProbeResult, ResultLine
from zeroprobe import __version__
from zeroprobe.config.loader import ContextFile
from zeroprobe.engine.core import Engine
from zeroprobe.engine.runner import now_ms
from zeroprobe.engine.store import HISTORY_SIZE
from zeroprobe.notify.notifier import Notifier
from zeroprobe.web.api import (
    NOTIFICATIONS_PATH,
    RESULTS_PATH,
    UI_PATH,
    all_results,
    is_problem,
    probe_result,
)
from zeroprobe.web.cluster import Cluster
from zeroprobe.web.markup import Child, Html, h, join, render_inline, render_markdown

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HTML_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC_FILES = {
    "app.js": "text/javascript",
    "app.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
DEFAULT_REFRESH_S = 10.0
REFRESH_RANGE_S = (1.0, 3600.0)
PENDING = "PENDING"


@dataclass(frozen=True, slots=True)
class StaticFile:
    """A file of zeroprobe/web/static, read once (from a wheel too)."""

    body: bytes
    content_type: str


def load_static_files() -> dict[str, StaticFile]:
    """Every static file by name."""
    folder = importlib.resources.files("zeroprobe.web") / "static"
    return {
        name: StaticFile((folder / name).read_bytes(), content_type)
        for name, content_type in STATIC_FILES.items()
    }


def static_version(files: Mapping[str, StaticFile]) -> str:
    """A short hash of the static files: their URLs change whenever one of them does."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(files[name].body)
    return digest.hexdigest()[:12]


# Words --------------------------------------------------------------------------------------


def format_age(seconds: float) -> str:
    """An age the way a person says it: '12 s', '4 min', '2 h 5 min', '3 d 4 h'."""
    s = max(0, math.floor(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def age_text(probe: ProbeResult) -> str:
    """'collected 12 s ago', or why there is nothing yet."""
    if probe.age_s is None:
        return "no result yet: the first run has not finished"
    text = f"collected {format_age(probe.age_s)} ago"
    if probe.stale:
        text += f": stale, older than {format_age(probe.stale_after_s)}"
    return text


def utc_time(epoch_ms: int) -> str:
    """A collection time for tooltips (the script shows local time instead)."""
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def history_title(point: HistoryPoint) -> str:
    """The tooltip of one history cell: status, time and, when it failed, how."""
    text = f"{point.status} at {utc_time(point.collected_at_ms)}"
    return text if point.outcome == "success" else f"{text} ({point.outcome})"


def summary_words(probes: Iterable[ProbeResult]) -> list[tuple[str, str]]:
    """(status class, words) per status present, worst first: ('RED', '2 RED')."""
    counts: dict[str, int] = {}
    for probe in probes:
        key = probe.status or PENDING
        counts[key] = counts.get(key, 0) + 1
    order = ["RED", "YELLOW", PENDING, "GREEN"]
    return [(key, f"{counts[key]} {key}") for key in order if key in counts]


def page_title(probes: list[ProbeResult]) -> str:
    """The browser tab: what is wrong at a glance."""
    bad = [words for key, words in summary_words(probes) if key in ("RED", "YELLOW")]
    return "zeroprobe: " + (", ".join(bad) if bad else "all GREEN" if probes else "no probes")


# Pieces ---------------------------------------------------------------------------------------


def status_class(status: str | None) -> str:
    """The CSS class that colours a badge, line or cell."""
    return f"status-{status or PENDING}"


def probe_card(probe: ProbeResult, *, hidden: bool = False, link: bool = True) -> Html:
    """One probe: badge, id, description, age, lines and history strip.

    static/app.js builds exactly this structure (renderProbe); keep them in step.
    """
    word = probe.status or PENDING
    name = h(
        "a" if link else "h1",
        {"class": "probe-id", "href": probe.links.ui if link else None},
        breakable(probe.service_id),
    )
    return h(
        "li",
        {
            "class": f"probe {status_class(probe.status)}",
            "id": f"probe-{probe.service_id}",
            "data-service-id": probe.service_id,
            "data-status": word,
            "data-problem": "true" if is_problem(probe) else "false",
            "data-collected-at-ms": probe.collected_at_ms,
            "data-stale-after-s": probe.stale_after_s,
            "hidden": hidden,
        },
        h(
            "div",
            {"class": "probe-head"},
            h("span", {"class": f"badge {status_class(probe.status)}"}, word),
            name,
            h("span", {"class": "stale-mark", "hidden": not probe.stale}, "STALE"),
        ),
        h("p", {"class": "probe-desc"}, probe.description),
        h(
            "p",
            {"class": "probe-meta"},
            h("span", {"class": "age" + (" is-stale" if probe.stale else "")}, age_text(probe)),
            h("span", {"class": "kind"}, probe.kind),
        ),
        lines_list(probe.lines),
        history_strip(probe.history),
        h("p", {"class": "history-caption", "aria-live": "polite"}),
    )


def breakable(service_id: str) -> list[Child]:
    """A service id that a narrow screen may wrap after each dot."""
    children: list[Child] = []
    for index, piece in enumerate(service_id.split(".")):
        if index:
            children += [".", h("wbr")]
        children.append(piece)
    return children


def lines_list(lines: list[ResultLine]) -> Html:
    """The actionBody: one item per line, each with its own grade in words."""
    return h(
        "ul",
        {"class": "lines"},
        [
            h(
                "li",
                {"class": f"line {status_class(line.status)}"},
                h(
                    "span",
                    {"class": "line-mark", "title": "not graded" if line.status is None else None},
                    line.status or "–",
                ),
                h("span", {"class": "line-text"}, render_inline(line.nodes)),
            )
            for line in lines
        ],
    )


def history_strip(points: list[HistoryPoint]) -> Html:
    """The last results, oldest first: one cell each, empty cells before the first run."""
    empty = max(0, HISTORY_SIZE - len(points))
    cells: list[Child] = [h("li", {"class": "cell empty"}) for _ in range(empty)]
    cells += [
        h(
            "li",
            {"class": f"cell {status_class(p.status)}", "title": history_title(p), "tabindex": 0},
        )
        for p in points[-HISTORY_SIZE:]
    ]
    return h(
        "ol",
        {"class": "history", "aria-label": f"last {HISTORY_SIZE} results, oldest first"},
        cells,
    )


def document(title: str, body_attrs: Mapping[str, str], *content: Child) -> Html:
    """A whole page: only same-origin stylesheet and script, versioned by content."""
    version = body_attrs["data-static-version"]
    return Html(
        "<!DOCTYPE html>\n"
        + h(
            "html",
            {"lang": "en"},
            h(
                "head",
                None,
                h("meta", {"charset": "utf-8"}),
                h("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
                h("meta", {"name": "color-scheme", "content": "light dark"}),
                h("title", None, title),
                h("link", {"rel": "stylesheet", "href": f"/static/app.css?v={version}"}),
                h("link", {"rel": "icon", "href": f"/static/favicon.svg?v={version}"}),
                h("script", {"src": f"/static/app.js?v={version}", "defer": True}),
            ),
            h("body", body_attrs, *content),
        )
    )


def contact_banner() -> Html:
    """Shown by the script while the service does not answer."""
    return h("div", {"id": "contact", "class": "banner", "role": "alert", "hidden": True})


def updated_line(at_ms: int, refresh_s: float) -> Html:
    """When the data shown was fetched, and how often it is."""
    return h(
        "p",
        {"class": "updated"},
        "data as of ",
        h("time", {"id": "updated-at"}, utc_time(at_ms)),
        f" · refreshes every {format_duration(refresh_s)}",
    )


def footer() -> Html:
    """Where the machine-readable data is."""
    links = [
        ("JSON API", RESULTS_PATH),
        ("OpenAPI", "/openapi.json"),
        ("/liveness", "/liveness"),
        ("/metrics", "/metrics"),
    ]
    return h(
        "footer",
        {"class": "footer"},
        f"zeroprobe {__version__} · ",
        join([h("a", {"href": href}, text), " · "] for text, href in links[:-1]),
        h("a", {"href": links[-1][1]}, links[-1][0]),
    )


def refresh_seconds(query: Mapping[str, str]) -> float:
    """`?refresh=SECONDS` within 1 s..1 h; the default otherwise."""
    try:
        value = float(query.get("refresh", ""))
    except ValueError:
        return DEFAULT_REFRESH_S
    low, high = REFRESH_RANGE_S
    return min(high, max(low, value)) if math.isfinite(value) else DEFAULT_REFRESH_S


def html_response(body: Html, status: int = 200) -> web.Response:
    """An HTML answer with the page's security headers."""
    return web.Response(
        text=body, status=status, content_type="text/html", charset="utf-8", headers=HTML_HEADERS
    )


# Pages ----------------------------------------------------------------------------------------


class StatusPages:
    """Handlers of /, /ui/{service_id} and /static/*."""

    def __init__(
        self, engine: Engine, notifier: Notifier | None = None, cluster: Cluster | None = None
    ) -> None:
        self._engine = engine
        self._notifier = notifier
        self._cluster = cluster
        self._static = load_static_files()
        self._version = static_version(self._static)

    def _body_attrs(self, page: str, source: str, refresh_s: float, **extra: str) -> dict[str, str]:
        return {
            "data-page": page,
            "data-source": source,
            "data-refresh-ms": str(round(refresh_s * 1000)),
            "data-static-version": self._version,
            **extra,
        }

    async def index(self, request: web.Request) -> web.Response:
        """GET /: every probe, worst first; `?only=problems` filters, `?refresh=S` paces."""
        # With a cluster, the other shards' probes too (web/cluster.py).
        remote = await self._cluster.remote() if self._cluster is not None else None
        data = all_results(self._engine, remote)
        problems_only = request.query.get("only") == "problems"
        refresh_s = refresh_seconds(request.query)
        probes = data.results
        problem_count = sum(is_problem(p) for p in probes)
        filters = h(
            "nav",
            {"class": "filter", "aria-label": "filter"},
            h(
                "a",
                {
                    "href": "/",
                    "data-filter": "all",
                    "aria-current": "page" if not problems_only else None,
                },
                "All ",
                h("span", {"class": "filter-count", "data-count": "all"}, str(len(probes))),
            ),
            h(
                "a",
                {
                    "href": "/?only=problems",
                    "data-filter": "problems",
                    "aria-current": "page" if problems_only else None,
                },
                "Problems only ",
                h("span", {"class": "filter-count", "data-count": "problems"}, str(problem_count)),
            ),
        )
        header = h(
            "header",
            {"class": "top"},
            h("h1", {"class": "brand"}, h("a", {"href": "/"}, "zeroprobe")),
            h(
                "p",
                {"class": "summary", "id": "summary"},
                [
                    h("span", {"class": f"count {status_class(k)}"}, w)
                    for k, w in summary_words(probes)
                ],
            ),
            filters,
            updated_line(data.now_ms, refresh_s),
        )
        cards = [probe_card(p, hidden=problems_only and not is_problem(p)) for p in probes]
        main = h(
            "main",
            None,
            h("ol", {"id": "probes", "class": "probes"}, cards),
            h(
                "p",
                {
                    "class": "empty-note",
                    "id": "empty-note",
                    "hidden": not (problems_only and problem_count == 0) and bool(probes),
                },
                "No problems: every probe is GREEN and fresh." if probes else "No probes loaded.",
            ),
            notifications_section(self._notifier, data.now_ms),
        )
        attrs = self._body_attrs(
            "index",
            RESULTS_PATH,
            refresh_s,
            **{"data-filter": "problems" if problems_only else "all"},
        )
        page = document(page_title(probes), attrs, header, contact_banner(), main, footer())
        return html_response(page)

    async def detail(self, request: web.Request) -> web.Response:
        """GET /ui/{service_id}: the probe, its runbook (the spec's body) and its settings."""
        service_id = request.match_info["service_id"]
        refresh_s = refresh_seconds(request.query)
        if not self._engine.knows(service_id):
            return self._not_found(service_id, refresh_s)
        remote = None
        if self._cluster is not None and self._engine.store.newest(service_id) is None:
            remote = await self._cluster.remote(service_id)
        at_ms = now_ms()
        context = self._engine.contexts[service_id]
        probe = probe_result(self._engine, service_id, at_ms, remote)
        header = h(
            "header",
            {"class": "top"},
            h("p", {"class": "brand"}, h("a", {"href": "/"}, "← all probes")),
            updated_line(at_ms, refresh_s),
        )
        main = h(
            "main",
            None,
            h("ol", {"id": "probes", "class": "probes"}, probe_card(probe, link=False)),
            runbook_section(context, self._engine.redact),
            settings_section(context, probe, self._engine.redact),
            raw_links_section(probe),
        )
        attrs = self._body_attrs("detail", probe.links.result, refresh_s)
        title = f"{probe.status or PENDING} {service_id}: zeroprobe"
        return html_response(document(title, attrs, header, contact_banner(), main, footer()))

    def _not_found(self, service_id: str, refresh_s: float) -> web.Response:
        attrs = self._body_attrs("missing", RESULTS_PATH, refresh_s)
        main = h(
            "main",
            None,
            h("h1", None, "No such probe"),
            h(
                "p",
                None,
                f"No loaded context spec has the service id {service_id!r}. ",
                h("a", {"href": "/"}, "See every probe."),
            ),
        )
        return html_response(document("No such probe: zeroprobe", attrs, main, footer()), 404)

    def static_handler(self, name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        """GET /static/<name>: cached for a year, since its URL carries its content's hash."""
        file = self._static[name]

        async def handler(request: web.Request) -> web.Response:
            return web.Response(
                body=file.body,
                headers={
                    "Content-Type": file.content_type,
                    "Cache-Control": "public, max-age=31536000, immutable",
                    "X-Content-Type-Options": "nosniff",
                },
            )

        return handler


def runbook_section(context: ContextFile, redact: Callable[[str], str] = str) -> Html:
    """The spec's Markdown body: goal and runbook (a pasted URL may carry a password)."""
    body = redact(context.body.strip())
    content: Child = (
        h("div", {"class": "markdown"}, render_markdown(body))
        if body
        else h("p", {"class": "muted"}, "This spec has no Markdown body (write one in a .md spec).")
    )
    return h("section", {"class": "runbook"}, h("h2", None, "Context and runbook"), content)


def settings_rows(values: Mapping[str, object], prefix: str = "") -> list[tuple[str, str]]:
    """A spec's fields flattened to (dotted name, text) pairs."""
    rows: list[tuple[str, str]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += settings_rows(value, f"{name}.")
        elif key in ("interval", "timeout") and isinstance(value, int | float) and not prefix:
            rows.append((name, format_duration(float(value))))
        elif isinstance(value, list):
            rows.append((name, ", ".join(_setting_text(v) for v in value)))
        else:
            rows.append((name, _setting_text(value)))
    return rows


def _setting_text(value: object) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def settings_section(
    context: ContextFile, probe: ProbeResult, redact: Callable[[str], str] = str
) -> Html:
    """Every field of the spec, where it was loaded from, and the stale limit. Values are
    scrubbed: a field may hold a URL with a password or a token (a query, a matcher)."""
    rows = [
        (name, redact(text)) for name, text in settings_rows(context.spec.model_dump(mode="json"))
    ]
    rows.append(("stale after", format_duration(probe.stale_after_s)))
    rows.append(("file", f"{context.path}:{context.line}"))
    return h(
        "section",
        {"class": "settings"},
        h("h2", None, "Settings"),
        h("dl", None, [(h("dt", None, name), h("dd", None, text)) for name, text in rows]),
    )


def raw_links_section(probe: ProbeResult) -> Html:
    """Links to the same data for machines."""
    links = [
        ("Zero Problem document (PUT or GET)", probe.links.document),
        ("newest result (JSON)", probe.links.result),
        ("history (JSON)", probe.links.history),
    ]
    return h(
        "section",
        {"class": "raw"},
        h("h2", None, "Raw data"),
        h("ul", None, [h("li", None, h("a", {"href": href}, text)) for text, href in links]),
    )


def notifications_section(notifier: Notifier | None, at_ms: int) -> Html | None:
    """Each sink's and Alertmanager's health: state, queue, last delivery. Never a URL (only an
    Alertmanager's host:port, scrubbed); an error text is scrubbed when it is recorded."""
    if notifier is None or not notifier.configured:
        return None
    rows = notifier.health()
    outbox = notifier.outbox
    storage = (
        "outbox on disk"
        if outbox.durable
        else f"outbox in memory only: {outbox.degraded}"
        if outbox.degraded
        else "outbox in memory only"
    )
    items = [
        h(
            "li",
            {"class": f"sink sink-{row.state.replace(' ', '-')}", "data-sink": row.name},
            h("span", {"class": "sink-state"}, row.state),
            " ",
            h("strong", {"class": "sink-name"}, row.name),
            f" ({row.type})",
            h(
                "span",
                {"class": "sink-meta"},
                " · ".join(
                    part
                    for part in (
                        f"{row.pending} waiting" if row.pending else "nothing waiting",
                        f"oldest {format_age(row.oldest_age_s)}" if row.oldest_age_s else "",
                        f"last delivered {format_age((at_ms - row.last_ok_ms) / 1000)} ago"
                        if row.last_ok_ms
                        else "nothing delivered yet",
                        f"{row.failed} refused" if row.failed else "",
                        f"{row.dropped} dropped" if row.dropped else "",
                    )
                    if part
                ),
            ),
            h("span", {"class": "sink-detail"}, row.detail) if row.detail else None,
        )
        for row in rows
    ]
    return h(
        "section",
        # The page's script refreshes the section from the API (app.js renderSinks).
        {"class": "notifications", "id": "notifications", "data-source": NOTIFICATIONS_PATH},
        h("h2", None, "Notifications"),
        h("p", {"class": "muted"}, storage),
        h("ul", {"class": "sinks"}, items) if items else h("p", None, "No sinks configured."),
    )


def add_ui_routes(
    router: web.UrlDispatcher,
    engine: Engine,
    notifier: Notifier | None = None,
    cluster: Cluster | None = None,
) -> None:
    """Register the status page and its static files (app.create_app wraps each handler)."""
    pages = StatusPages(engine, notifier, cluster)
    router.add_get("/", pages.index)
    router.add_get(UI_PATH + "/{service_id}", pages.detail)
    for name in STATIC_FILES:
        router.add_get(f"/static/{name}", pages.static_handler(name))
