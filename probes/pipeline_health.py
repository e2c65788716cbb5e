"""CI pipeline health on one branch: GitHub Actions, GitLab CI or Jenkins.

`probe_pipeline_health` reads the recent runs from the provider's documented API (and, when the
newest completed run failed, the tail of its failed job's log); the `measure_*` functions turn
replies into `Run`s (pure); `grade_pipeline_health` (pure) makes the line:
`- main: run #1234 failed 12m ago (3 in a row, last success 5h ago) https://… — hint: …`.

The token travels only in request headers to the connection's own host and is registered
with the redactor before any request, so no line, log record or metric can carry it.
"""

from __future__ import annotations

import base64
import json
import re
import statistics
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from yarl import URL

from probes.base import Kind, Observation, ProbeContext, reading_reply
from probes.errors import ProbeConfigError, ProbeError, ProbeReplyError
from probes.http_client import HttpTarget, RawReply, request_timeout_s
from probes.lines import one_line
from probes.times import format_age, parse_time_ms
from schemas.context_spec import PipelineHealthSpec
from schemas.grading import Grade, Line

#: How much of a failed job's log is read: its end, where the error is.
LOG_TAIL_BYTES = 64 * 1024
#: Runs asked for beyond `runs`, so that runs in progress do not crowd out completed ones.
EXTRA_RUNS = 10
MAX_PER_PAGE = 100
#: When a rate limit names no reset time.
DEFAULT_RETRY_S = 60.0

SERVICES = {"github": "GitHub", "gitlab": "GitLab", "jenkins": "Jenkins"}

#: Built-in hints, tried after the spec's own, first match wins. Order: the most specific
#: cause first (exit 137 is usually the OOM killer; say so).
BUILTIN_HINTS: tuple[tuple[str, str], ...] = (
    (r"exit(?:ed with)? code:? 137|exit status 137|\bsignal: killed\b", "out of memory (exit 137)"),
    (
        r"(?i)out of memory|\bOOMKilled\b|JavaScript heap out of memory|"
        r"java\.lang\.OutOfMemoryError|Cannot allocate memory|\bMemoryError\b",
        "out of memory",
    ),
    (r"No space left on device", "disk full (No space left on device)"),
    (
        r"MODULE_NOT_FOUND|ModuleNotFoundError|Cannot find module|No module named",
        "missing module",
    ),
    (r"\bENOENT\b|No such file or directory", "file not found (ENOENT)"),
    (
        r"ETIMEDOUT|(?i:connection timed out|connect timed out|timed out while connecting|"
        r"Read timed out|i/o timeout)",
        "connection timeout",
    ),
    (
        r"(?m)^\s*FAILED\s|\b\d+ failed\b|Tests? failed|\bFAIL(?:ED)?:|There (?:was|were) \d+ "
        r"failures?|Tests run: \d+, Failures: [1-9]|\bAssertionError\b",
        "failing tests",
    ),
)


class Outcome(StrEnum):
    """What became of a run, in one vocabulary for every provider."""

    SUCCESS = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    RUNNING = "running"
    OTHER = "waiting"  # manual, scheduled, waiting for approval: neither done nor running


@dataclass(frozen=True, slots=True)
class Run:
    """One pipeline run (GitHub workflow run, GitLab pipeline, Jenkins build), newest first."""

    number: int
    outcome: Outcome
    url: str = ""
    started_ms: int | None = None
    finished_ms: int | None = None
    #: The provider's own id, for reading the run's jobs (GitHub run id, GitLab pipeline id).
    run_id: str = ""

    @property
    def duration_ms(self) -> int | None:
        """How long a completed run took; None when a time is missing."""
        if self.started_ms is None or self.finished_ms is None:
            return None
        return max(0, self.finished_ms - self.started_ms)


@dataclass(frozen=True, slots=True)
class PipelineObservation(Observation):
    """The recent runs, newest first, and what the failed run's log hinted at."""

    runs: tuple[Run, ...]
    measured_at_ms: int
    hint: str = ""
    #: Set while a rate limit keeps the probe from asking: why the runs shown are old.
    stale: str = ""


# Measuring: provider replies -> runs (pure) ------------------------------------------------


def measure_github_runs(data: Any) -> tuple[Run, ...]:
    """Runs of `GET /repos/{owner}/{repo}/actions/workflows/{workflow}/runs`."""
    items = data.get("workflow_runs") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise ProbeReplyError("unreadable reply from GitHub: no workflow_runs list")
    runs = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        status, conclusion = item.get("status"), item.get("conclusion")
        if status == "completed":
            outcome = {
                "success": Outcome.SUCCESS,
                "failure": Outcome.FAILED,
                "timed_out": Outcome.FAILED,
                "startup_failure": Outcome.FAILED,
                "cancelled": Outcome.CANCELLED,
                "skipped": Outcome.SKIPPED,
                "neutral": Outcome.SKIPPED,
                "stale": Outcome.SKIPPED,
                "action_required": Outcome.OTHER,
            }.get(str(conclusion), Outcome.OTHER)
        elif status in ("in_progress", "queued", "requested", "pending"):
            outcome = Outcome.RUNNING
        else:  # waiting (for a deployment approval)
            outcome = Outcome.OTHER
        started = parse_time_ms(item.get("run_started_at")) or parse_time_ms(item.get("created_at"))
        runs.append(
            Run(
                number=_int(item.get("run_number")),
                outcome=outcome,
                url=str(item.get("html_url") or ""),
                started_ms=started,
                finished_ms=parse_time_ms(item.get("updated_at"))
                if outcome is not Outcome.RUNNING
                else None,
                run_id=str(item.get("id", "")),
            )
        )
    return _newest_first(runs)


_GITLAB = {
    "success": Outcome.SUCCESS,
    "failed": Outcome.FAILED,
    "canceled": Outcome.CANCELLED,
    "cancelled": Outcome.CANCELLED,
    "skipped": Outcome.SKIPPED,
    "running": Outcome.RUNNING,
    "pending": Outcome.RUNNING,
    "created": Outcome.RUNNING,
    "preparing": Outcome.RUNNING,
    "waiting_for_resource": Outcome.RUNNING,
    "canceling": Outcome.RUNNING,
}


def measure_gitlab_pipelines(data: Any) -> tuple[Run, ...]:
    """Runs of `GET /api/v4/projects/{id}/pipelines` (manual, scheduled: waiting)."""
    if not isinstance(data, list):
        raise ProbeReplyError("unreadable reply from GitLab: not a JSON list of pipelines")
    runs = []
    for item in data:
        if not isinstance(item, Mapping):
            continue
        outcome = _GITLAB.get(str(item.get("status")), Outcome.OTHER)
        runs.append(
            Run(
                number=_int(item.get("id")),
                outcome=outcome,
                url=str(item.get("web_url") or ""),
                started_ms=parse_time_ms(item.get("created_at")),
                finished_ms=parse_time_ms(item.get("updated_at"))
                if outcome is not Outcome.RUNNING
                else None,
                run_id=str(item.get("id", "")),
            )
        )
    return _newest_first(runs)


_JENKINS = {
    "SUCCESS": Outcome.SUCCESS,
    "FAILURE": Outcome.FAILED,
    "UNSTABLE": Outcome.FAILED,
    "ABORTED": Outcome.CANCELLED,
    "NOT_BUILT": Outcome.SKIPPED,
}


def measure_jenkins_builds(data: Any) -> tuple[Run, ...]:
    """Runs of `GET /job/<name>/api/json?tree=builds[number,result,building,timestamp,...]`."""
    items = data.get("builds") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise ProbeReplyError("unreadable reply from Jenkins: no builds list")
    runs = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        building = bool(item.get("building"))
        outcome = (
            Outcome.RUNNING if building else _JENKINS.get(str(item.get("result")), Outcome.OTHER)
        )
        started = item.get("timestamp")
        started_ms = int(started) if isinstance(started, int | float) and started > 0 else None
        duration = item.get("duration")
        finished_ms = (
            started_ms + int(duration)
            if started_ms is not None and not building and isinstance(duration, int | float)
            else None
        )
        runs.append(
            Run(
                number=_int(item.get("number")),
                outcome=outcome,
                url=str(item.get("url") or ""),
                started_ms=started_ms,
                finished_ms=finished_ms,
                run_id=str(item.get("number", "")),
            )
        )
    return _newest_first(runs)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _newest_first(runs: list[Run]) -> tuple[Run, ...]:
    # Providers answer newest first already; sorting keeps a stable contract anyway.
    return tuple(sorted(runs, key=lambda r: (r.started_ms or 0, r.number), reverse=True))


def find_hint(log_tail: str, custom: Sequence[tuple[str, str]] = ()) -> str:
    """The hint of the first pattern (the spec's, then the built-ins) found in `log_tail`."""
    for pattern, hint in (*custom, *BUILTIN_HINTS):
        if re.search(pattern, log_tail):
            return hint
    return ""


# Grading (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measurements:
    """What the grade is made of, computed from the runs."""

    newest: Run | None
    consecutive_failures: int
    failures: int
    weighed: int
    last_success: Run | None
    stuck: Run | None
    median_success_ms: float | None

    @property
    def failure_rate(self) -> float:
        """Failed share of the weighed runs (succeeded or failed); 0 without any."""
        return self.failures / self.weighed if self.weighed else 0.0


def measure(runs: Sequence[Run], spec: PipelineHealthSpec, now_ms: int) -> Measurements:
    """Newest completed run, failures in a row, failure rate over `spec.runs`, stuck run."""
    completed = [r for r in runs if r.outcome in (Outcome.SUCCESS, Outcome.FAILED)]
    newest = completed[0] if completed else None
    consecutive = 0
    for run in completed:
        if run.outcome is not Outcome.FAILED:
            break
        consecutive += 1
    weighed = completed[: spec.runs]
    failures = sum(1 for r in weighed if r.outcome is Outcome.FAILED)
    successes = [r for r in completed if r.outcome is Outcome.SUCCESS]
    durations = [d for r in successes[: spec.runs] if (d := r.duration_ms) is not None]
    median_ms = statistics.median(durations) if durations else None
    stuck = None
    if median_ms is not None:
        limit_ms = spec.stuck_factor * max(median_ms, 1000.0)
        for run in runs:
            started_ms = run.started_ms
            if run.outcome is Outcome.RUNNING and started_ms and now_ms - started_ms > limit_ms:
                stuck = run
                break
    return Measurements(
        newest=newest,
        consecutive_failures=consecutive,
        failures=failures,
        weighed=len(weighed),
        last_success=successes[0] if successes else None,
        stuck=stuck,
        median_success_ms=median_ms,
    )


def _ago(now_ms: int, then_ms: int | None) -> str:
    return f"{format_age((now_ms - then_ms) / 1000)} ago" if then_ms is not None else ""


def grade_pipeline_health(observation: PipelineObservation, spec: PipelineHealthSpec) -> list[Line]:
    """One line for the branch, and one more when a run in progress looks stuck."""
    now = observation.measured_at_ms
    name = spec.job if spec.provider == "jenkins" else spec.branch
    m = measure(observation.runs, spec, now)
    stale = f" [stale: {observation.stale}]" if observation.stale else ""
    lines: list[Line] = []
    newest = m.newest
    if newest is None:
        what = "no runs" if not observation.runs else "no completed run"
        lines.append(Line(f"- {name}: {what} among the recent runs{stale}", Grade.YELLOW))
    else:
        when = _ago(now, newest.finished_ms or newest.started_ms)
        head = f"- {name}: run #{newest.number} {newest.outcome.value}" + (
            f" {when}" if when else ""
        )
        details: list[str] = []
        if m.last_success is not None:
            success_ms = m.last_success.finished_ms or m.last_success.started_ms
        else:
            success_ms = None
        if newest.outcome is Outcome.FAILED:
            details.append(f"{m.consecutive_failures} in a row")
            if m.last_success is not None:
                details.append(f"last success {_ago(now, success_ms)}".rstrip())
            else:
                details.append(f"no success in the last {len(observation.runs)} runs")
        rate_hit = m.weighed > 0 and m.failure_rate >= spec.yellow_failure_rate
        # The rate is news only when it alone makes the line YELLOW.
        if rate_hit and newest.outcome is Outcome.SUCCESS:
            details.append(f"{m.failure_rate:.0%} of the last {m.weighed} runs failed")
        # Without a success among the runs read, the pipeline has been broken at least since
        # the oldest run read.
        oldest = [r.started_ms for r in observation.runs if r.started_ms is not None]
        broken_since = success_ms if m.last_success is not None else min(oldest, default=None)
        broken_s = (now - broken_since) / 1000 if broken_since is not None else 0.0
        if newest.outcome is Outcome.FAILED and (
            m.consecutive_failures >= spec.red_consecutive_failures
            or broken_s >= spec.red_without_success
        ):
            grade = Grade.RED
        elif newest.outcome is Outcome.FAILED or rate_hit:
            grade = Grade.YELLOW
        else:
            grade = Grade.GREEN
        text = head + (f" ({', '.join(details)})" if details else "")
        text += f" {newest.url}" if newest.url else ""
        if newest.outcome is Outcome.FAILED and observation.hint:
            text += f" — hint: {observation.hint}"
        lines.append(Line(one_line(text + stale), grade))
    if m.stuck is not None and m.median_success_ms is not None:
        running = format_age((now - (m.stuck.started_ms or now)) / 1000)
        median = format_age(m.median_success_ms / 1000)
        url = f" {m.stuck.url}" if m.stuck.url else ""
        lines.append(
            Line(
                one_line(
                    f"- {name}: run #{m.stuck.number} looks stuck: running for {running}, "
                    f"median successful run {median}{url}{stale}"
                ),
                Grade.YELLOW,
            )
        )
    return lines


# Probing: requests ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Api:
    """One provider's API for one spec: where to ask, with which headers."""

    spec: PipelineHealthSpec
    target: HttpTarget
    headers: Mapping[str, str]
    service: str
    #: time.monotonic() by which every request of the run must have its answer.
    deadline: float

    @property
    def timeout_s(self) -> float:
        """What is left of the run's request budget (runs, jobs, log, redirect share it)."""
        return max(0.05, self.deadline - time.monotonic())

    def url(self, path: str, query: Sequence[tuple[str, str]] = ()) -> URL:
        """`path` (already percent-encoded) below the base URL, with `query`."""
        base = self.target.base_url
        url = base.with_path(base.raw_path.rstrip("/") + path, encoded=True)
        return url.with_query(list(query)) if query else url

    @property
    def what(self) -> str:
        """The target as a person names it, for 404 lines."""
        spec = self.spec
        if spec.provider == "github":
            return f"repository {spec.repository} or workflow {spec.workflow}"
        if spec.provider == "gitlab":
            return f"project {spec.project}"
        return f"job {spec.job}"


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _headers(spec: PipelineHealthSpec, ctx: ProbeContext, target: HttpTarget) -> dict[str, str]:
    headers = dict(target.headers)
    if spec.provider == "github":
        headers["Accept"] = "application/vnd.github+json"
        headers["X-GitHub-Api-Version"] = "2022-11-28"
    if spec.token_env is None:
        return headers
    token = ctx.http.environ_value(spec.token_env)
    if not token:
        raise ProbeConfigError(
            f"token_env: {spec.token_env} is not set (it should hold the "
            f"{SERVICES[spec.provider]} token for connection {spec.connection!r})"
        )
    ctx.redact.add(token)
    if "Authorization" in headers:
        raise ProbeConfigError(
            f"connection {spec.connection!r}: the URL has user:password and the spec names "
            "token_env: use one of them"
        )
    if spec.provider == "github":
        headers["Authorization"] = f"Bearer {token}"
    elif spec.provider == "gitlab":
        headers["PRIVATE-TOKEN"] = token
    else:
        if ":" not in token:
            raise ProbeConfigError(
                f"token_env: {spec.token_env} must hold user:apitoken for Jenkins basic auth"
            )
        encoded = base64.b64encode(token.encode()).decode("ascii")
        ctx.redact.add(token.split(":", 1)[1])
        ctx.redact.add(encoded)
        headers["Authorization"] = f"Basic {encoded}"
    return headers


class RateLimitedError(ProbeReplyError):
    """The provider's rate limit is spent until `retry_at_ms`."""

    def __init__(self, message: str, retry_at_ms: int) -> None:
        super().__init__(message)
        self.retry_at_ms = retry_at_ms


def rate_limit_reset_ms(reply: RawReply, now_ms: int) -> int | None:
    """When a rate-limited reply says to retry (epoch ms); None when it is no rate limit.

    GitHub: 403 or 429 with `x-ratelimit-remaining: 0` (reset in `x-ratelimit-reset`, epoch s)
    or `retry-after` (s). GitLab: 429 with `retry-after` / `ratelimit-reset`.
    """
    headers = reply.headers
    limited = reply.status == 429 or (
        reply.status == 403
        and (headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers)
    )
    if not limited:
        return None
    retry_after = _number(headers.get("retry-after"))
    if retry_after is not None:
        return now_ms + int(retry_after * 1000)
    reset = _number(headers.get("x-ratelimit-reset") or headers.get("ratelimit-reset"))
    if reset is not None and reset * 1000 > now_ms:
        return int(reset * 1000)
    return now_ms + int(DEFAULT_RETRY_S * 1000)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


async def _get(api: _Api, ctx: ProbeContext, url: URL, *, tail: bool = False) -> RawReply:
    return await ctx.http.fetch(
        url,
        service=api.service,
        where=f"{api.service} at {api.target.display}",
        timeout_s=api.timeout_s,
        headers=api.headers,
        tail_bytes=LOG_TAIL_BYTES if tail else None,
    )


def _check(api: _Api, reply: RawReply, now_ms: int) -> None:
    """Raise the plain-English error of a reply that is not 200 (never quoting its body)."""
    if reply.status == 200:
        return
    reset_ms = rate_limit_reset_ms(reply, now_ms)
    if reset_ms is not None:
        raise RateLimitedError(
            f"{api.service} rate limit reached ({reply.status_text})", retry_at_ms=reset_ms
        )
    if reply.status in (401, 403):
        raise ProbeReplyError(
            f"{api.service} token rejected ({reply.status_text}): check token_env"
            + (f" {api.spec.token_env}" if api.spec.token_env else "")
            + " and the token's permissions"
        )
    if reply.status == 404:
        raise ProbeReplyError(f"{api.service}: {api.what} not found ({reply.status_text})")
    if 300 <= reply.status < 400:
        raise ProbeReplyError(
            f"{api.service} redirected the request ({reply.status_text}): "
            "set the connection to the API's final address"
        )
    raise ProbeReplyError(f"{api.service} answered {reply.status_text}")


def _json(api: _Api, reply: RawReply) -> Any:
    try:
        return json.loads(reply.body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProbeReplyError(f"unreadable reply from {api.service}: not JSON") from None


def _runs_url(api: _Api) -> URL:
    spec = api.spec
    per_page = str(min(MAX_PER_PAGE, spec.runs + EXTRA_RUNS))
    if spec.provider == "github":
        owner, repo = (spec.repository or "/").split("/", 1)
        path = (
            f"/repos/{_quote(owner)}/{_quote(repo)}/actions/workflows/"
            f"{_quote(spec.workflow or '')}/runs"
        )
        return api.url(path, [("branch", spec.branch), ("per_page", per_page)])
    if spec.provider == "gitlab":
        path = f"/api/v4/projects/{_quote(spec.project or '')}/pipelines"
        return api.url(path, [("ref", spec.branch), ("per_page", per_page)])
    tree = f"builds[number,result,building,timestamp,duration,url]{{0,{per_page}}}"
    return api.url(f"{_jenkins_job_path(spec)}/api/json", [("tree", tree)])


def _jenkins_job_path(spec: PipelineHealthSpec) -> str:
    parts = [p for p in (spec.job or "").split("/") if p]
    return "".join(f"/job/{_quote(p)}" for p in parts)


async def _log_tail(api: _Api, ctx: ProbeContext, run: Run, now_ms: int) -> str:
    """The last 64 KiB of the failed job's log of `run`; empty when there is none."""
    spec = api.spec
    if spec.provider == "github":
        owner, repo = (spec.repository or "/").split("/", 1)
        base = f"/repos/{_quote(owner)}/{_quote(repo)}/actions"
        reply = await _get(api, ctx, api.url(f"{base}/runs/{_quote(run.run_id)}/jobs"))
        _check(api, reply, now_ms)
        jobs = _json(api, reply)
        items = jobs.get("jobs") if isinstance(jobs, Mapping) else None
        failed = [
            j
            for j in (items if isinstance(items, list) else [])
            if isinstance(j, Mapping) and j.get("conclusion") in ("failure", "timed_out")
        ]
        if not failed:
            return ""
        url = api.url(f"{base}/jobs/{_quote(str(failed[0].get('id', '')))}/logs")
    elif spec.provider == "gitlab":
        base = f"/api/v4/projects/{_quote(spec.project or '')}"
        reply = await _get(
            api,
            ctx,
            api.url(f"{base}/pipelines/{_quote(run.run_id)}/jobs", [("scope[]", "failed")]),
        )
        _check(api, reply, now_ms)
        jobs = _json(api, reply)
        failed = [j for j in (jobs if isinstance(jobs, list) else []) if isinstance(j, Mapping)]
        if not failed:
            return ""
        url = api.url(f"{base}/jobs/{_quote(str(failed[0].get('id', '')))}/trace")
    else:
        url = api.url(f"{_jenkins_job_path(spec)}/{_quote(run.run_id)}/consoleText")
    reply = await _get(api, ctx, url, tail=True)
    if reply.status in (301, 302, 303, 307, 308) and "location" in reply.headers:
        # GitHub answers job logs with a redirect to short-lived storage. The token goes
        # along only to the API's own origin, never to another host.
        location = url.join(URL(reply.headers["location"]))
        same = location.origin() == api.target.base_url.origin()
        reply = await ctx.http.fetch(
            location,
            service=api.service,
            where=f"{api.service} log storage",
            timeout_s=api.timeout_s,
            headers=api.headers if same else {},
            tail_bytes=LOG_TAIL_BYTES,
        )
    if reply.status != 200:
        return ""  # a missing log only costs the hint
    return reply.body.decode("utf-8", errors="replace")


async def probe_pipeline_health(spec: PipelineHealthSpec, ctx: ProbeContext) -> PipelineObservation:
    """Read the recent runs of the spec's pipeline; the failed job's log tail for a hint.

    While a rate limit lasts, the last observation comes back marked stale (no request).
    """
    now_ms = time.time_ns() // 1_000_000
    memory = ctx.memory.setdefault(spec.service_id, {})
    target = ctx.http.target(spec.connection)
    api = _Api(
        spec=spec,
        target=target,
        headers=_headers(spec, ctx, target),
        service=SERVICES[spec.provider],
        deadline=time.monotonic() + request_timeout_s(spec.timeout_s),
    )
    retry_at_ms = memory.get("retry_at_ms")
    if isinstance(retry_at_ms, int) and now_ms < retry_at_ms:
        return _stale(api, memory, retry_at_ms)
    try:
        reply = await _get(api, ctx, _runs_url(api))
        _check(api, reply, now_ms)
        data = _json(api, reply)
        with reading_reply(api.service):
            if spec.provider == "github":
                runs = measure_github_runs(data)
            elif spec.provider == "gitlab":
                runs = measure_gitlab_pipelines(data)
            else:
                runs = measure_jenkins_builds(data)
        completed = [r for r in runs if r.outcome in (Outcome.SUCCESS, Outcome.FAILED)]
        hint = ""
        if completed and completed[0].outcome is Outcome.FAILED:
            custom = [(h.pattern, h.hint) for h in spec.hints]
            try:
                tail = await _log_tail(api, ctx, completed[0], now_ms)
            except ProbeError:
                tail = ""  # the runs are measured: a log out of reach only costs the hint
            hint = find_hint(tail, custom)
    except RateLimitedError as exc:
        memory["retry_at_ms"] = exc.retry_at_ms
        return _stale(api, memory, exc.retry_at_ms)
    observation = PipelineObservation(runs=runs, measured_at_ms=now_ms, hint=hint)
    memory["last"] = observation
    memory.pop("retry_at_ms", None)
    return observation


def _stale(api: _Api, memory: dict[str, Any], retry_at_ms: int) -> PipelineObservation:
    retry = time.strftime("%H:%M:%S UTC", time.gmtime(retry_at_ms / 1000))
    last = memory.get("last")
    if not isinstance(last, PipelineObservation):
        raise ProbeReplyError(
            f"{api.service} rate limit reached and no earlier result: retrying after {retry}"
        )
    return replace(last, stale=f"{api.service} rate limit, retrying after {retry}")


# /liveness is about the Mongo-backed probes: an outage of this kind's target shows as a RED
# line of its own probe, not as a failing collector.
KIND = Kind(
    name="pipeline_health",
    spec=PipelineHealthSpec,
    probe=probe_pipeline_health,
    grade=grade_pipeline_health,
    secret_env_fields=("token_env",),
)
