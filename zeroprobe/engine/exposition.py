"""The per-probe part of /metrics, kept rendered between scrapes.

Each probe's samples are a row of bytes chunks, one per family, rendered again only when
the probe changed since the previous scrape. The rows are kept in groups: those of probes
that changed between the same two scrapes, which with regular intervals change together
again. Each group keeps, per family, its chunks joined (a block) and that block compressed,
until one of its rows changes or leaves. A family's samples must be contiguous, so a scrape
sends each family's header, then that family's block of every group, and so on; it renders
the changed probes, joins and compresses the groups that changed, and sends the rest as it
was. A gzip body is a sequence of independently compressed segments (gzip_segments.py).

The sample lines are those prometheus-client writes (labels sorted by name, values as Go
prints floats); the text format and OpenMetrics share them and differ in the family headers
only (a counter's family is `x_total` in the one, `x` in the other; OpenMetrics has units).
A test compares this rendering with prometheus-client's own of the same facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest as _openmetrics_latest
from prometheus_client.registry import Collector

from zeroprobe.engine.gzip_segments import Segment, deflate, gzip_pieces
from zeroprobe.engine.store import Result

Format = Literal["text", "openmetrics"]
EOF = b"# EOF\n"


def openmetrics_latest(registry: Collector) -> bytes:
    """prometheus-client's OpenMetrics exposition of `registry` (typed), `# EOF` included."""
    body: bytes = _openmetrics_latest(registry)  # type: ignore[no-untyped-call]
    return body


def go_float(value: float) -> str:
    """`value` as prometheus-client writes it (Go's formatting: 1e+06 from a million on)."""
    text = repr(float(value))
    dot = text.find(".")
    if dot > 6 and value > 0:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    if dot < 0 and text in _SPECIAL:  # a finite float's repr has a dot or an exponent
        return _SPECIAL[text]
    return text


_SPECIAL = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


def go_int(value: int) -> str:
    """A count as go_float writes it, without the float below a million (a run counter)."""
    return f"{value}.0" if 0 <= value < 1_000_000 else go_float(value)


def label_value(value: str) -> str:
    """A label value escaped for the exposition (backslash, newline, double quote)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


class _Only(Collector):
    """A registry of one (empty) family, to let prometheus-client write its headers."""

    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> Iterable[Metric]:
        return [self._metric]


#: Most groups the table keeps; past it, the two smallest neighbours merge.
MAX_GROUPS = 32

#: A probe's samples: one chunk per family of the table (b"": none in that family).
Row = tuple[bytes, ...]


class _Group:
    """The rows of probes that changed between the same two scrapes, kept as one column of
    chunks per family (so a family's block is one C-level join), with the blocks and the
    blocks compressed. Probes at a regular interval change together again an interval
    later: they then leave this group all at once, and the other groups, with their blocks
    and compressed bytes, stay as they were."""

    __slots__ = ("blocks", "columns", "deflated", "size", "version")

    def __init__(self, columns: list[dict[str, bytes]], size: int = 0) -> None:
        self.columns = columns  # per family: service id -> chunk (absent: no samples)
        self.size = size  # rows
        self.version = 0
        self.blocks: list[bytes] | None = None
        self.deflated: list[Segment] | None = None

    def stale(self) -> None:
        self.version += 1
        self.blocks = None
        self.deflated = None


@dataclass(frozen=True, slots=True)
class _Slice:
    """A group as a scrape found it."""

    group: _Group
    version: int
    blocks: list[bytes] | None  # None: to be joined from `chunks`
    chunks: list[list[bytes]]  # per family
    deflated: list[Segment] | None


class Table:
    """The per-probe families: a row of chunks per probe, the rows in groups (see _Group).
    A family's samples are its chunk of every row, group after group."""

    __slots__ = ("_groups", "_header_segments", "_open", "_where", "headers", "names")

    def __init__(self, families: Sequence[Metric]) -> None:
        """`families`: the families without samples (name, type, help, unit), in row order."""
        self.names = [metric.name for metric in families]
        self.headers: dict[Format, list[bytes]] = {
            "text": [generate_latest(_Only(metric)) for metric in families],
            "openmetrics": [
                openmetrics_latest(_Only(metric)).removesuffix(EOF) for metric in families
            ],
        }
        self._header_segments = {
            fmt: [deflate((header,)) for header in headers] for fmt, headers in self.headers.items()
        }
        self._groups: list[_Group] = []
        self._where: dict[str, _Group] = {}
        self._open: _Group | None = None  # where changed rows go until the next `begin`

    def _new_group(self) -> _Group:
        return _Group([{} for _ in self.names])

    def rows(self) -> dict[str, Row]:
        """Every probe's row (tests)."""
        return {
            sid: tuple(column.get(sid, b"") for column in group.columns)
            for sid, group in self._where.items()
        }

    def groups(self) -> int:
        """How many groups the rows are in (tests)."""
        return len(self._groups)

    def begin(self) -> None:
        """Changed rows go to a new group from now on: called once per refresh of the
        changed probes. Empty groups go; past MAX_GROUPS, the smallest neighbours merge."""
        self._open = None
        self._groups = [group for group in self._groups if group.size]
        while len(self._groups) > MAX_GROUPS:
            sizes = [a.size + b.size for a, b in pairwise(self._groups)]
            at = sizes.index(min(sizes))
            first, second = self._groups[at : at + 2]
            merged = _Group(
                [{**a, **b} for a, b in zip(first.columns, second.columns, strict=True)],
                first.size + second.size,
            )
            self._groups[at : at + 2] = [merged]
            for column in merged.columns:  # a row has a chunk in one column at least
                for service_id in column:
                    self._where[service_id] = merged

    def set(self, service_id: str, row: Row | None) -> None:
        """The samples of a probe (None: it has none)."""
        group = self._where.get(service_id)
        if group is not None:
            for column in group.columns:
                column.pop(service_id, None)
            group.size -= 1
            group.stale()
        if row is None:
            self._where.pop(service_id, None)
            return
        target = self._open
        if target is None:
            target = self._open = self._new_group()
            self._groups.append(target)
        for column, chunk in zip(target.columns, row, strict=True):
            if chunk:
                column[service_id] = chunk
        target.size += 1
        target.stale()
        self._where[service_id] = target

    def scrape(self, registry: Collector, fmt: Format, compressed: bool) -> Scrape:
        """An exposition of the rows as they are now; joining and compressing the groups
        that changed are left to the scrape's thread (Scrape.build)."""
        slices = [
            _Slice(
                group,
                group.version,
                group.blocks,
                [list(column.values()) for column in group.columns] if group.blocks is None else [],
                group.deflated if compressed else None,
            )
            for group in self._groups
            if group.size
        ]
        return Scrape(
            self.headers[fmt],
            self._header_segments[fmt],
            slices,
            registry=registry,
            fmt=fmt,
            compressed=compressed,
        )


class Scrape:
    """One exposition: the groups as they were when it began (on the event loop), built
    by `build` (in a thread: joining and zlib release the GIL) and handed back to the
    groups by `finish` (on the loop again)."""

    def __init__(
        self,
        headers: list[bytes],
        header_segments: list[Segment],
        slices: list[_Slice],
        *,
        registry: Collector,
        fmt: Format,
        compressed: bool,
    ) -> None:
        self.fmt = fmt
        self.compressed = compressed
        self._headers = headers
        self._header_segments = header_segments
        self._slices = slices
        self._registry = registry
        self._made: list[tuple[_Slice, list[bytes], list[Segment] | None]] = []

    def build(self) -> list[bytes]:
        """The body, as pieces to send one after the other: the per-probe families, then the
        process-wide ones of the registry (rendered anew: they are few and change often)."""
        columns = range(len(self._headers))
        made = []
        for piece in self._slices:
            blocks = piece.blocks
            if blocks is None:
                blocks = [b"".join(chunks) for chunks in piece.chunks]
            deflated = piece.deflated
            if self.compressed and deflated is None:
                deflated = [deflate((block,)) for block in blocks]
            made.append((piece, blocks, deflated))
        self._made = made
        if self.fmt == "openmetrics":
            tail = openmetrics_latest(self._registry)  # ends with # EOF
        else:
            tail = generate_latest(self._registry)
        if self.compressed:
            segments = []
            for i in columns:
                segments.append(self._header_segments[i])
                segments += [deflated[i] for _, _, deflated in made if deflated is not None]
            return gzip_pieces([*segments, deflate((tail,))])
        pieces = []
        for i in columns:
            pieces.append(self._headers[i])
            pieces += [blocks[i] for _, blocks, _ in made]
        pieces.append(tail)
        return pieces

    def finish(self) -> None:
        """Let the groups keep the blocks and compressed bytes `build` made, unless they
        changed meanwhile."""
        for piece, blocks, deflated in self._made:
            group = piece.group
            if group.version == piece.version:
                group.blocks = blocks
                if deflated is not None:
                    group.deflated = deflated


# The per-probe series of the store ------------------------------------------------------------


def probe_families() -> tuple[Metric, Metric, Metric, Metric]:
    """Status, duration, runs by outcome and last success, without samples."""
    return (
        GaugeMetricFamily(
            "zeroprobe_probe_status",
            "Published status of a probe: 0 GREEN, 1 YELLOW, 2 RED (flap damping: a "
            "change counts once `confirm` runs agree).",
        ),
        GaugeMetricFamily(
            "zeroprobe_probe_duration_seconds",
            "How long the newest run of a probe took.",
            unit="seconds",
        ),
        CounterMetricFamily(
            "zeroprobe_probe_runs",
            "Probe runs by outcome: success (measured), error (could not measure), timeout.",
        ),
        GaugeMetricFamily(
            "zeroprobe_probe_last_success_timestamp_seconds",
            "Unix time of the newest run that measured its target.",
            unit="seconds",
        ),
    )


def probe_chunks(
    result: Result, counts: Sequence[int], last_success_ms: int | None
) -> tuple[bytes, bytes, bytes, bytes]:
    """A probe's samples of the four families of `probe_families`."""
    kind = label_value(result.kind)
    service_id = label_value(result.service_id)
    labels = f'{{kind="{kind}",service_id="{service_id}"}} '
    successes, errors, timeouts = counts
    runs = ""
    # Written out: a generator over the three outcomes cost more than the formatting.
    head = f'zeroprobe_probe_runs_total{{kind="{kind}",outcome='
    tail = f',service_id="{service_id}"}} '
    if successes:
        runs = f'{head}"success"{tail}{go_int(successes)}\n'
    if errors:
        runs += f'{head}"error"{tail}{go_int(errors)}\n'
    if timeouts:
        runs += f'{head}"timeout"{tail}{go_int(timeouts)}\n'
    return (
        f"zeroprobe_probe_status{labels}{result.grade.rank}.0\n".encode(),
        f"zeroprobe_probe_duration_seconds{labels}{go_float(result.duration_s)}\n".encode(),
        runs.encode(),
        b""
        if last_success_ms is None
        else f"zeroprobe_probe_last_success_timestamp_seconds{labels}"
        f"{go_float(last_success_ms / 1000)}\n".encode(),
    )


def kind_chunk(name: str, label: str, service_id: str, values: Mapping[str, float]) -> bytes:
    """A probe's samples of a kind's gauge `name`: label value (redacted) -> value."""
    sid = label_value(service_id)
    if label < "service_id":
        return "".join(
            f'{name}{{{label}="{label_value(key)}",service_id="{sid}"}} {go_float(value)}\n'
            for key, value in values.items()
        ).encode()
    return "".join(
        f'{name}{{service_id="{sid}",{label}="{label_value(key)}"}} {go_float(value)}\n'
        for key, value in values.items()
    ).encode()
