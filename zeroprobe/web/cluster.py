"""Any pod answers any id: forwarding to the owning shard, warm start, reshard grace.

A cluster is S shards of R replicas (zeroprobe/config/topology.py). Every pod loads every spec
and probes the ids of its shard; both replicas of a shard probe the same ids. This module is
what makes the pods one service to the monitoring system, without a cluster protocol: each
pod computes every id's owner itself and talks HTTP to the others by their stable URLs.

Forwarding. `PUT`/`GET /<id>` of an id another shard owns goes to that shard's replicas: the
first replica rotates per request, timeouts are short (connect 0.25 s, total 1 s), the sibling
gets one retry, the connections are kept alive in one shared session. The answer is the
owner's exact bytes and status, its 503 "no result yet" included. A forwarded request carries
`X-Zeroprobe-Forwarded: 1` and is never forwarded again. No replica answering is a JSON 503
with the reason: never a colour this pod made up.

Warm start. A starting pod asks a sibling replica (`GET /-/cluster/results`, protected by the
access token when one is set) for everything it holds, results and history, and takes the
ids it owns as its own results, so it is ready within seconds rather than after a probe round
(Engine.readiness counts them). With R = 1 there is nobody to ask.

Reshard (S changes: on Kubernetes a rolling restart with a new ZEROPROBE_SHARDS, so for a while
pods disagree about S; the rollout sets ZEROPROBE_PREVIOUS_SHARDS to the old S). Jump hashing
moves about 1/S' of the ids, all to the new shards, whose pods start with nothing. So:

(a) a pod keeps the results it receives by warm start for ids it does not own, for a grace
    window of two of the id's intervals (ResultStore.restore with `grace_until_ms`), then
    forgets them; warm start asks the sibling for everything it holds, not filtered by S;
(b) a forwarded request is answered from any result the pod holds (its own or kept), else
    with its own 503;
(c) a request for an id without a local result asks the owner's replicas (when the owner is
    another shard), then — still without a document — the previous owner's replicas, then
    answers a kept result, and only then 503;
(d) a pod of a new shard, after its warm start, also asks the previous owners of its ids for
    their results (`?shard=K&shards=S`), so it is ready at once too.

A pod that still runs the old S answers from its own results for ids it still believes it
owns; a pod with the new S finds any id either at its new owner, or at its old owner, or in a
result it kept: no known id answers 503 while the pods change over (tests/test_cluster_reshard.py
grows 1 × 2 pods to 2 × 2 under load). Shrinking S moves the last shards' ids to the others:
their pods stay, draining (zeroprobe/config/topology.py), and keep probing those ids while
the others restart, so their new owners find the results at the draining pods (d, c); the
StatefulSet is scaled down after the rollout (docs/scaling.md, "Shrinking").

Direct notification sinks are written by replica 0 of each shard only (notify/notifier.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp import hdrs, web

from zeroprobe import __version__
from zeroprobe.config.topology import Topology, jump_hash, stable_hash64
from zeroprobe.engine.core import Check, Engine
from zeroprobe.engine.runner import now_ms
from zeroprobe.engine.store import HistoryRun, Result

log = logging.getLogger(__name__)

FORWARDED_HEADER = "X-Zeroprobe-Forwarded"
RESULTS_PATH = "/-/cluster/results"
LIVENESS_PATH = "/-/cluster/liveness"

#: Forwarding one request: a peer on the same network answers in about a millisecond.
FORWARD_CONNECT_S = 0.25
FORWARD_TOTAL_S = 1.0
#: Fetching a whole shard's results (warm start, the page): bigger answers.
FETCH_TOTAL_S = 10.0
#: How often each peer is asked /livez (zeroprobe_peers_reachable) and kept results expire.
PEER_CHECK_S = 10.0
PEER_RECHECK_S = 1.0
#: A kept result of another shard's id lives this many of the id's intervals.
GRACE_INTERVALS = 2
#: The answers of the other shards for the page and /api/v1/results are reused this long.
MERGE_CACHE_S = 1.0

_PASSED_HEADERS = (hdrs.CONTENT_TYPE, hdrs.RETRY_AFTER)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Answer:
    """A peer's answer to a forwarded request."""

    status: int
    body: bytes
    headers: dict[str, str]

    def response(self) -> web.Response:
        return web.Response(status=self.status, body=self.body, headers=self.headers)


@dataclass(slots=True)
class Remote:
    """Results of other shards' ids fetched for one answer, and the shards that did not answer."""

    held: dict[str, tuple[Result, list[HistoryRun]]] = field(default_factory=dict)
    silent: set[int] = field(default_factory=set)


# The cluster ----------------------------------------------------------------------------------


class Cluster:
    """This pod's side of the cluster: forwarding, the internal endpoints, warm start."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.topology: Topology = engine.topology
        self.metrics = engine.cluster_metrics
        token = engine.settings.auth_token
        # The headers of every request to a peer, built once (the token is never logged).
        self._headers: dict[str, str] = {FORWARDED_HEADER: "1"}
        if token is not None:
            self._headers[hdrs.AUTHORIZATION] = f"Bearer {token}"
        self._forward_timeout = aiohttp.ClientTimeout(
            total=FORWARD_TOTAL_S, sock_connect=FORWARD_CONNECT_S
        )
        self._fetch_timeout = aiohttp.ClientTimeout(
            total=FETCH_TOTAL_S, sock_connect=FORWARD_CONNECT_S
        )
        self._session: aiohttp.ClientSession | None = None
        self._turn: dict[int, int] = {}
        self._reachable: dict[str, bool] = {}
        self._checker: asyncio.Task[None] | None = None
        self._merged: tuple[float, Remote] | None = None
        self._merging: asyncio.Lock | None = None

    # Life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the shared session and take the sibling's results (warm start)."""
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, ttl_dns_cache=60),
            timeout=self._forward_timeout,
            headers={hdrs.USER_AGENT: f"zeroprobe/{__version__} (cluster)"},
            auto_decompress=False,
        )
        self._merging = asyncio.Lock()
        try:
            await self.warm_start()
        except Exception:  # a peer's odd answer must not keep the pod from starting
            log.exception("warm start failed; results come from this pod's own runs")
        self._checker = asyncio.get_running_loop().create_task(self._check_peers())

    async def stop(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        if self._session is not None:
            await self._session.close()

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """An aiohttp cleanup context: start (before the engine schedules), then stop."""
        await self.start()
        yield
        await self.stop()

    # Talking to peers ---------------------------------------------------------------------

    async def _get(
        self, base: str, path: str, *, method: str = "GET", total_s: float = FORWARD_TOTAL_S
    ) -> Answer | None:
        """One request to the pod at `base`; None when it did not answer (refused, timeout)."""
        assert self._session is not None
        try:
            async with self._session.request(
                method,
                base + path,
                headers=self._headers,
                timeout=self._fetch_timeout if total_s > FORWARD_TOTAL_S else self._forward_timeout,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                passed = {
                    str(h): response.headers[h] for h in _PASSED_HEADERS if h in response.headers
                }
                answer = Answer(response.status, body, passed)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._note(base, False)
            log.debug("peer %s did not answer: %s", base, type(exc).__name__)
            return None
        self._note(base, True)
        return answer

    def _note(self, base: str, ok: bool) -> None:
        if self._reachable.get(base) is not ok:
            self._reachable[base] = ok
            if self.metrics is not None:
                self.metrics.peers_reachable.set(sum(self._reachable.values()))

    def _rotated(self, shard: int, replicas: list[str]) -> list[str]:
        """The replicas of `shard`, the first one rotating from call to call; a replica whose
        last request failed goes last (a lost node would otherwise cost every other forward
        the connect timeout until the next check of peers finds it back)."""
        turn = self._turn.get(shard, 0)
        self._turn[shard] = turn + 1
        start = turn % len(replicas) if replicas else 0
        rotated = replicas[start:] + replicas[:start]
        return sorted(rotated, key=lambda base: self._reachable.get(base) is False)

    async def _ask_shard(
        self, shard: int, replicas: list[str], path: str, method: str, total_s: float
    ) -> tuple[Answer | None, bool]:
        """Ask the replicas of `shard`, the rotating first and then one retry on the next:
        the first usable answer (a 503 only when no replica gave better), and whether it took
        the retry."""
        fallback: Answer | None = None
        for attempt, base in enumerate(self._rotated(shard, replicas)[:2]):
            answer = await self._get(base, path, method=method, total_s=total_s)
            if answer is None or answer.status in (401, 403) or answer.status >= 500:
                if answer is not None and answer.status == 503 and fallback is None:
                    fallback = answer  # "no result yet": the sibling may have one
                continue
            return answer, attempt > 0
        return fallback, True

    # Documents ---------------------------------------------------------------------------

    async def document(self, request: web.Request, service_id: str) -> web.StreamResponse | None:
        """The answer for a known id this pod has no result of its own for (app.py's slow
        path); None to let the slow path answer locally (its result, or its own 503)."""
        engine = self.engine
        if engine.store.newest(service_id) is not None:
            return None  # a request with a body for an id this pod probes
        at_ms = now_ms()
        if request.headers.get(FORWARDED_HEADER) == "1":
            kept = engine.store.grace_newest(service_id, at_ms)  # (b)
            return _document(kept) if kept is not None else None
        started = time.perf_counter()
        topology = self.topology
        owner = topology.owner(service_id)
        path = "/" + quote(service_id, safe="")
        owners_503: Answer | None = None
        outcome = "unavailable"
        try:
            if owner != topology.shard:
                answer, retried = await self._ask_shard(
                    owner, topology.peers_of(owner), path, request.method, FORWARD_TOTAL_S
                )
                if answer is not None and answer.status != 503:
                    outcome = "retried_ok" if retried else "ok"
                    return answer.response()
                owners_503 = answer
            elif topology.replicas > 1:
                # This pod's own id before its first result (a spec just added, a failed
                # warm start): the sibling replica may have one.
                answer, _ = await self._ask_shard(
                    owner, topology.siblings(), path, request.method, FORWARD_TOTAL_S
                )
                if answer is not None and answer.status == 200:
                    outcome = "sibling"
                    return answer.response()
            previous = topology.previous_owner(service_id)
            if previous is not None and previous not in (owner, topology.shard):
                answer, _ = await self._ask_shard(
                    previous, topology.peers_of(previous), path, request.method, FORWARD_TOTAL_S
                )
                if answer is not None and answer.status == 200:
                    outcome = "previous_owner"
                    return answer.response()
            kept = engine.store.grace_newest(service_id, at_ms)
            if kept is not None:
                outcome = "grace"
                return _document(kept)
            if owner == topology.shard:
                outcome = "local"
                return None  # this pod's own 503: its first run has not finished
            if owners_503 is not None:
                outcome = "no_result"
                return owners_503.response()
            return web.json_response(
                {
                    "error": f"no replica of shard {owner} answered for {service_id!r}",
                    "status": 503,
                    "reason": "the pods that probe this id did not answer within "
                    f"{FORWARD_TOTAL_S:g} s",
                    "shard": owner,
                },
                status=503,
                headers={hdrs.RETRY_AFTER: "1"},
            )
        finally:
            if self.metrics is not None and outcome != "local":
                self.metrics.forwarded_requests.labels(outcome).inc()
                self.metrics.forward_duration.observe(time.perf_counter() - started)

    # Results of the other shards (the page, /api/v1/results) -------------------------------

    def held_answer(
        self, shard: int | None, shards: int | None, service_id: str | None
    ) -> list[dict[str, Any]]:
        """What GET /-/cluster/results lists: the results this pod holds (its own and kept
        ones) of the ids shard `shard` of `shards` owns (all without a shard), or of one id."""
        count = shards if shards is not None else self.topology.shards

        def wanted(sid: str) -> bool:
            if service_id is not None and sid != service_id:
                return False
            return shard is None or jump_hash(stable_hash64(sid), count) == shard

        return self.engine.store.snapshots(now_ms(), wanted)

    async def _fetch(self, shard: int, replicas: list[str], query: str) -> list[Any] | None:
        answer, _ = await self._ask_shard(
            shard, replicas, RESULTS_PATH + query, "GET", FETCH_TOTAL_S
        )
        if answer is None or answer.status != 200:
            return None
        try:
            payload = await asyncio.to_thread(_json, answer.body)
            results = payload["results"]
        except (ValueError, KeyError, TypeError):
            log.warning("a peer of shard %d answered unreadable results", shard)
            return None
        return results if isinstance(results, list) else None

    def _decoded(self, items: Iterable[Any]) -> Iterable[tuple[Result, list[HistoryRun]]]:
        for item in items:
            try:
                yield self.engine.store.unpack(item)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError):
                log.debug("skipped an unreadable result from a peer")

    async def remote(self, service_id: str | None = None) -> Remote:
        """Results of the other shards' ids from one replica per shard (of one id: from its
        owner's); the shards that did not answer in `silent`."""
        topology = self.topology
        if service_id is not None:
            owner = topology.owner(service_id)
            remote = Remote()
            if owner == topology.shard:
                return remote
            items = await self._fetch(owner, topology.peers_of(owner), f"?id={quote(service_id)}")
            if items is None:
                remote.silent.add(owner)
            else:
                remote.held.update((r.service_id, (r, h)) for r, h in self._decoded(items))
            return remote
        assert self._merging is not None
        async with self._merging:  # concurrent page loads share one round of requests
            cached = self._merged
            if cached is not None and time.monotonic() - cached[0] < MERGE_CACHE_S:
                return cached[1]
            others = [k for k in range(topology.shards) if k != topology.shard]
            answers = await asyncio.gather(
                *(
                    self._fetch(k, topology.peers_of(k), f"?shard={k}&shards={topology.shards}")
                    for k in others
                )
            )
            remote = Remote()
            for shard, items in zip(others, answers, strict=True):
                if items is None:
                    remote.silent.add(shard)
                    continue
                remote.held.update((r.service_id, (r, h)) for r, h in self._decoded(items))
            self._merged = (time.monotonic(), remote)
            return remote

    # Warm start --------------------------------------------------------------------------

    async def warm_start(self) -> None:
        """Take the results a sibling replica holds (all of them: see the module's (a), (d)),
        then, during a reshard, the previous owners' results of this shard's ids."""
        topology = self.topology
        taken = kept = 0
        for base in topology.siblings():
            items = await self._fetch(topology.shard, [base], "")
            if items is not None:
                taken, kept = self._take(items)
                log.info(
                    "warm start: %d result(s) of this shard and %d of other shards kept from %s",
                    taken,
                    kept,
                    base,
                )
                break
        else:
            if topology.replicas > 1:
                log.info("warm start: no sibling replica answered")
        if topology.previous_shards is None:
            return
        wanted = [
            sid
            for sid in self.engine.contexts
            if self.engine.owns(sid) and self.engine.store.newest(sid) is None
        ]
        previous = {topology.previous_owner(sid) for sid in wanted} - {topology.shard, None}
        query = f"?shard={topology.shard}&shards={topology.shards}"
        for shard in sorted(k for k in previous if k is not None):
            items = await self._fetch(shard, topology.peers_of(shard), query)
            if items is not None:
                got, _ = self._take(items)
                log.info("warm start: %d result(s) from previous owner shard %d", got, shard)

    def _take(self, items: Iterable[Any]) -> tuple[int, int]:
        """Restore the results of `items` (snapshots): owned ids as this pod's own, the
        others as kept for their grace window; how many of each were taken."""
        engine = self.engine
        at_ms = now_ms()
        taken = kept = 0
        for item in items:
            try:
                newest = item["newest"]
                context = engine.contexts.get(newest["service_id"])
                if context is None or context.spec.kind != newest["kind"]:
                    continue
                if engine.owns(context.spec.service_id):
                    taken += engine.store.restore(item)
                else:
                    until_ms = at_ms + round(GRACE_INTERVALS * context.spec.interval_s * 1000)
                    kept += engine.store.restore(item, grace_until_ms=until_ms)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError):
                log.debug("skipped an unreadable result from a peer")
        return taken, kept

    # /liveness for the whole cluster -------------------------------------------------------

    async def liveness(self, local: list[Check]) -> list[Check]:
        """This pod's checks and those of one replica of every other shard, by id; a shard that
        does not answer is a failing check named as such, and so is each of its ids."""
        topology = self.topology
        others = [k for k in range(topology.shards) if k != topology.shard]
        answers = await asyncio.gather(
            *(
                self._ask_shard(k, topology.peers_of(k), LIVENESS_PATH, "GET", FORWARD_TOTAL_S)
                for k in others
            )
        )
        by_id = {check.name: check for check in local}
        silent: list[int] = []
        for shard, (answer, _) in zip(others, answers, strict=True):
            checks = _checks(answer)
            if checks is None:
                silent.append(shard)
                continue
            for check in checks:
                # During a reshard two shards may report an id: the owner's word wins.
                if check.name not in by_id or topology.owner(check.name) == shard:
                    by_id[check.name] = check
        merged = [Check(f"shard {k}", False, "no replica of the shard answered") for k in silent]
        for service_id in sorted(self.engine.contexts):
            found = by_id.get(service_id)
            if found is None:
                owner = topology.owner(service_id)
                reason = (
                    f"shard {owner} did not answer"
                    if owner in silent
                    else f"no pod of shard {owner} reported it"
                )
                found = Check(service_id, False, reason)
            merged.append(found)
        return merged

    # Peers' health -------------------------------------------------------------------------

    async def _check_peers(self) -> None:
        """Ask each other pod /livez now and then (zeroprobe_peers_reachable); forget results
        kept for other shards once their grace window ended."""
        me = self.topology.url_of(self.topology.index)
        others = [url for url in self.topology.peers if url != me]
        while True:
            await asyncio.gather(*(self._get(url, "/livez") for url in others))
            self.engine.store.forget_expired(now_ms())
            # A peer that did not answer is asked again soon: it is likely starting.
            everyone = all(self._reachable.get(url) for url in others)
            await asyncio.sleep(PEER_CHECK_S if everyone else PEER_RECHECK_S)

    # Routes ----------------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher, wrap: Callable[[Handler], Handler]) -> None:
        """GET /-/cluster/results and /-/cluster/liveness (`wrap`: JSON errors, the token)."""
        router.add_get(RESULTS_PATH, wrap(self.results_endpoint))
        router.add_get(LIVENESS_PATH, wrap(self.liveness_endpoint))

    async def results_endpoint(self, request: web.Request) -> web.Response:
        """GET /-/cluster/results[?shard=K[&shards=S]|?id=ID]: the results this pod holds."""
        try:
            shard = int(request.query["shard"]) if "shard" in request.query else None
            shards = int(request.query["shards"]) if "shards" in request.query else None
        except ValueError:
            return web.json_response(
                {"error": "shard and shards must be whole numbers", "status": 400}, status=400
            )
        if shards is not None and shards < 1:
            return web.json_response(
                {"error": "shards must be at least 1", "status": 400}, status=400
            )
        items = self.held_answer(shard, shards, request.query.get("id"))
        body = {"shard": self.topology.shard, "shards": self.topology.shards, "results": items}
        # Encoded in a thread: the snapshots are fresh objects, and a whole shard's results
        # (megabytes) would hold up every PUT on the event loop.
        encoded = await asyncio.to_thread(json.dumps, body, separators=(",", ":"))
        return web.Response(text=encoded, content_type="application/json")

    async def liveness_endpoint(self, request: web.Request) -> web.Response:
        """GET /-/cluster/liveness: the /liveness checks of the ids this pod's shard owns."""
        checks = self.engine.liveness()
        return web.json_response(
            {"shard": self.topology.shard, "checks": [check.as_json() for check in checks]}
        )


def _document(result: Result) -> web.Response:
    return web.Response(body=result.document, content_type="application/json")


def _json(body: bytes) -> Any:
    return json.loads(body)


def _checks(answer: Answer | None) -> list[Check] | None:
    if answer is None or answer.status != 200:
        return None
    try:
        payload = _json(answer.body)
        return [
            Check(str(item["name"]), bool(item["ok"]), str(item.get("reason", "")))
            for item in payload["checks"]
        ]
    except (ValueError, KeyError, TypeError):
        return None


CLUSTER = web.AppKey("cluster", Cluster)
