"""No secret leaves the process: not in a response, a log line, a metric or the CLI's output.

Secrets are made at test time (random, never constants), each with a random hex core that no
encoding can disguise. Targets then do their worst to leak them: a MongoDB that fails SCRAM
authentication with a message quoting the URI and the password, command errors echoing them,
unusable URIs the driver quotes, DNS and TLS failures for URIs with credentials, and provider
fakes (Prometheus, Alertmanager, GitHub, GitLab, Jenkins) whose error bodies, reason phrases,
labels, annotations and run URLs echo the token, its percent-encoded and its base64 form.
A real `zeroprobe serve` process (DEBUG logs) is scraped on every endpoint; `zeroprobe check`
and `zeroprobe run` are run; an exception whose str() is the whole URI is raised inside a
probe. Every output is searched for every form of every secret.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from aiohttp import web

from probes.base import Kind
from probes.redact import MEMO_ENTRIES, RedactingFilter, Redactor
from schemas.context_spec import MongoReplicationLagSpec
from schemas.grading import Grade
from tests.hostile_servers import HostileServer, answers_http, self_signed_tls
from tests.test_cli_process import Proc, Spawn, clean_env, free_port, request, spawn
from zeroprobe.config.kinds import installed_kinds
from zeroprobe.config.loader import ContextFile
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.logs import configure_logging
from zeroprobe.simulators.mongo import SimulatedReplicaSet
from zeroprobe.simulators.monitoring import ThreadedApp

__all__ = ["spawn"]  # the fixture, shared with the CLI process tests

LOCALHOST = "127.0.0.1"


def core() -> str:
    """A random hex core: the part of a secret that must appear nowhere, in any encoding."""
    return secrets.token_hex(10)


@dataclass
class Secret:
    """A secret value, its random core, and the user it goes with (basic auth), if any."""

    value: str
    core: str
    user: str = ""

    def forms(self) -> dict[str, str]:
        """Every form the secret may travel in."""
        forms = {
            "raw": self.value,
            "core": self.core,
            "percent-encoded": quote(self.value, safe=""),
            "form-encoded": quote_plus(self.value, safe=""),
            "base64": base64.b64encode(self.value.encode()).decode(),
        }
        if self.user:
            pair = f"{self.user}:{self.value}"
            forms["base64 user:password"] = base64.b64encode(pair.encode()).decode()
        return forms


def password(user: str = "") -> Secret:
    """A password with characters a URI must percent-encode."""
    c = core()
    return Secret(f"Pw{c}@:/%+", c, user)


def token(prefix: str = "tok") -> Secret:
    c = core()
    return Secret(f"{prefix}{c}", c)


@dataclass
class Secrets:
    mongo: Secret = field(default_factory=lambda: password("monitor"))
    prom_basic: Secret = field(default_factory=lambda: password("promuser"))
    prom_bearer: Secret = field(default_factory=lambda: token("prom-"))
    am_bearer: Secret = field(default_factory=lambda: token("am-"))
    github: Secret = field(default_factory=lambda: token("ghp_"))
    gitlab: Secret = field(default_factory=lambda: token("glpat-"))
    jenkins: Secret = field(default_factory=lambda: token("jk"))
    auth: Secret = field(default_factory=lambda: token("zpauth"))

    def all(self) -> dict[str, Secret]:
        return dict(vars(self))

    def echo(self) -> str:
        """A text quoting every secret in every form, as a careless server might."""
        return " ".join(
            f"{name}={form}" if i % 2 else f"Authorization: Bearer {form}"
            for name, secret in self.all().items()
            for i, (form_name, form) in enumerate(secret.forms().items())
            if form_name != "core"  # no server echoes a part of a secret; it is only looked for
        )


def assert_nothing_leaks(outputs: dict[str, str], found: Secrets) -> None:
    for where, text in outputs.items():
        for name, secret in found.all().items():
            for form_name, form in secret.forms().items():
                assert form not in text, f"{name} ({form_name}) leaked in {where}"


def uri_password(secret: Secret) -> str:
    return quote(secret.value, safe="")


# Provider fakes ---------------------------------------------------------------------------


def echoing_providers(found: Secrets) -> web.Application:
    """Prometheus, Alertmanager, GitHub, GitLab and Jenkins APIs that echo every secret."""
    echo = found.echo()
    leaky_url = (
        f"https://x-access-token:{found.github.value}@ci.example.invalid/run/1"
        f"?access_token={found.gitlab.value}&sig={quote(found.jenkins.value, safe='')}"
    )

    async def prom_400(request: web.Request) -> web.Response:
        body = {"status": "error", "errorType": "bad_data", "error": f"bad token: {echo}"}
        return web.json_response(body, status=400)

    async def prom_500(request: web.Request) -> web.Response:
        seen = request.headers.get("Authorization", "")
        return web.Response(text=f"<h1>{seen}</h1> {echo}", status=500, reason=f"Oops {seen}")

    async def prom_ok(request: web.Request) -> web.Response:
        result = [
            {"metric": {"__name__": "leak", "token": found.prom_bearer.value}, "value": [1, "99"]}
        ]
        body = {
            "status": "success",
            "warnings": [echo],
            "data": {"resultType": "vector", "result": result},
        }
        return web.json_response(body)

    async def am_alerts(request: web.Request) -> web.Response:
        alert = {
            "labels": {"alertname": "Leak", "severity": "critical", "token": found.am_bearer.value},
            "annotations": {"summary": f"echo {echo}"},
            "startsAt": "2026-01-01T00:00:00Z",
            "status": {"state": "active", "silencedBy": [], "inhibitedBy": []},
            "fingerprint": "f1",
        }
        return web.json_response([alert])

    async def am_400(request: web.Request) -> web.Response:
        return web.json_response(f"bad matcher format: {echo}", status=400)

    async def github_runs(request: web.Request) -> web.Response:
        run = {
            "id": 1,
            "run_number": 7,
            "status": "completed",
            "conclusion": "failure",
            "html_url": leaky_url,
            "head_branch": "main",
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:05:00Z",
        }
        return web.json_response({"workflow_runs": [run]})

    async def gitlab_pipelines(request: web.Request) -> web.Response:
        return web.Response(text=echo, status=500, reason=f"Bad {request.headers['PRIVATE-TOKEN']}")

    async def jenkins_builds(request: web.Request) -> web.Response:
        build = {
            "number": 3,
            "result": "FAILURE",
            "building": False,
            "url": leaky_url,
            "timestamp": 1767225600000,
            "duration": 1000,
        }
        return web.json_response({"builds": [build]})

    async def anything_else(request: web.Request) -> web.Response:
        return web.Response(text=echo, status=404, reason="Not Found")

    app = web.Application()
    app.router.add_post("/p400/api/v1/query", prom_400)
    app.router.add_post("/p500/api/v1/query", prom_500)
    app.router.add_post("/pok/api/v1/query", prom_ok)
    app.router.add_get("/am/api/v2/alerts", am_alerts)
    app.router.add_get("/am400/api/v2/alerts", am_400)
    app.router.add_get("/gh/repos/acme/app/actions/workflows/ci.yml/runs", github_runs)
    app.router.add_get("/gl/api/v4/projects/acme%2Fapp/pipelines", gitlab_pipelines)
    app.router.add_get("/jk/job/app/api/json", jenkins_builds)
    app.router.add_route("*", "/{tail:.*}", anything_else)
    return app


# A served zeroprobe against every leaky target ----------------------------------------------

FAKE_DNS = '''"""Test-only: every *.invalid name fails to resolve in-process, so no DNS query leaves
the machine (and the error quotes the name, as some resolvers do)."""
import socket

_real = socket.getaddrinfo


def _getaddrinfo(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.endswith(".invalid"):
        raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {name}")
    return _real(host, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo
'''


@dataclass
class Stack:
    """The targets, the contexts folder and the environment of a zeroprobe under test."""

    found: Secrets
    contexts: Path
    environ: dict[str, str]
    service_ids: list[str]


def spec_yaml(service_id: str, kind: str, connection: str, **fields: str) -> str:
    lines = [
        f"service_id: {service_id}",
        f"kind: {kind}",
        f"connection: {connection}",
        "interval: 2s",
        "timeout: 1s",
        *(f"{k}: {v}" for k, v in fields.items()),
    ]
    if kind == "prometheus_query":
        lines += ["query: up", "thresholds: {yellow: 1, red: 2}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    found = Secrets()
    mongo_pw = uri_password(found.mongo)
    auth_failing = SimulatedReplicaSet(size=1, lag_fn=lambda member, elapsed_s: 0.0)
    command_failing = SimulatedReplicaSet(size=1, lag_fn=lambda member, elapsed_s: 0.0)
    providers = ThreadedApp(lambda: echoing_providers(found))
    tls = HostileServer(answers_http(b"[]"), tls=self_signed_tls(tmp_path))
    with auth_failing, command_failing, providers, tls:
        uri_echo = f"mongodb://monitor:{mongo_pw}@{auth_failing.hosts[0]}/?authSource=admin"
        for command in ("saslStart", "authenticate"):
            auth_failing.fail(
                command,
                18,
                "AuthenticationFailed",
                f"Authentication failed for {uri_echo}: {found.echo()}",
            )
        command_failing.fail("replSetGetStatus", 8000, "AtlasError", f"{uri_echo} {found.echo()}")
        base = providers.url
        with_user = (
            f"http://promuser:{uri_password(found.prom_basic)}@{base.removeprefix('http://')}"
        )
        connections = {
            "mongo-auth": f"{uri_echo}&directConnection=true",
            "mongo-command": f"mongodb://{command_failing.hosts[0]}/?directConnection=true",
            "mongo-badport": f"mongodb://monitor:{mongo_pw}@{LOCALHOST}:99999/",
            "mongo-badoption": f"mongodb://monitor:{mongo_pw}@{LOCALHOST}:1/?tls=maybe",
            "mongo-dns": f"mongodb://monitor:{mongo_pw}@db.zeroprobe-test.invalid:27017/",
            "mongo-tls": f"mongodb://monitor:{mongo_pw}@{tls.address}/?tls=true&directConnection=true",
            "prom-400": f"{base}/p400",
            "prom-500": f"{with_user}/p500",
            "prom-ok": f"{base}/pok",
            "prom-dns": f"http://promuser:{uri_password(found.prom_basic)}@prom.invalid:9090",
            "prom-tls": f"https://promuser:{uri_password(found.prom_basic)}@{tls.address}",
            "am": f"{base}/am",
            "am-400": f"{base}/am400",
            "gh": f"{base}/gh",
            "gl": f"{base}/gl",
            "jk": f"{base}/jk",
        }
        specs = {
            "leak.mongo.auth": spec_yaml("leak.mongo.auth", "mongo_replication_lag", "mongo-auth"),
            "leak.mongo.command": spec_yaml(
                "leak.mongo.command", "mongo_replication_lag", "mongo-command"
            ),
            "leak.mongo.badport": spec_yaml(
                "leak.mongo.badport", "mongo_replication_lag", "mongo-badport"
            ),
            "leak.mongo.badoption": spec_yaml(
                "leak.mongo.badoption", "mongo_replication_lag", "mongo-badoption"
            ),
            "leak.mongo.dns": spec_yaml("leak.mongo.dns", "mongo_replication_lag", "mongo-dns"),
            "leak.mongo.tls": spec_yaml("leak.mongo.tls", "mongo_replication_lag", "mongo-tls"),
            "leak.prom.400": spec_yaml(
                "leak.prom.400", "prometheus_query", "prom-400", bearer_token_env="PROM_TOKEN"
            ),
            "leak.prom.500": spec_yaml("leak.prom.500", "prometheus_query", "prom-500"),
            "leak.prom.ok": spec_yaml(
                "leak.prom.ok", "prometheus_query", "prom-ok", bearer_token_env="PROM_TOKEN"
            ),
            "leak.prom.dns": spec_yaml("leak.prom.dns", "prometheus_query", "prom-dns"),
            "leak.prom.tls": spec_yaml("leak.prom.tls", "prometheus_query", "prom-tls"),
            "leak.am": spec_yaml(
                "leak.am", "alertmanager_alerts", "am", bearer_token_env="AM_BEARER"
            ),
            "leak.am.400": spec_yaml(
                "leak.am.400", "alertmanager_alerts", "am-400", bearer_token_env="AM_BEARER"
            ),
            "leak.gh": spec_yaml(
                "leak.gh",
                "pipeline_health",
                "gh",
                provider="github",
                token_env="GH_TOKEN",
                repository="acme/app",
                workflow="ci.yml",
            ),
            "leak.gl": spec_yaml(
                "leak.gl",
                "pipeline_health",
                "gl",
                provider="gitlab",
                token_env="GL_TOKEN",
                project="acme/app",
            ),
            "leak.jk": spec_yaml(
                "leak.jk",
                "pipeline_health",
                "jk",
                provider="jenkins",
                token_env="JK_TOKEN",
                job="app",
            ),
        }
        contexts = tmp_path / "contexts"
        contexts.mkdir()
        for service_id, text in specs.items():
            (contexts / f"{service_id}.yaml").write_text(text, encoding="utf-8")
        site = tmp_path / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(FAKE_DNS, encoding="utf-8")
        environ = clean_env(
            **{
                f"ZEROPROBE_CONNECTION_{k.upper().replace('-', '_')}": v
                for k, v in connections.items()
            },
            PROM_TOKEN=found.prom_bearer.value,
            AM_BEARER=found.am_bearer.value,
            GH_TOKEN=found.github.value,
            GL_TOKEN=found.gitlab.value,
            JK_TOKEN=f"jenkins-user:{found.jenkins.value}",
            ZEROPROBE_AUTH_TOKEN=found.auth.value,
            ZEROPROBE_LOG_LEVEL="DEBUG",
            PYTHONPATH=str(site),
            PYTHONWARNINGS="always",
        )
        yield Stack(found, contexts, environ, sorted(specs))


def authed(port: int, method: str, path: str, token: str) -> tuple[int, str]:
    """One request with the bearer token (whether or not access control is on): the status,
    and the headers and body as text."""
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=10)
    try:
        conn.request(method, path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        headers = json.dumps(dict(response.getheaders()))
        return response.status, f"{headers}\n{response.read().decode('utf-8', 'replace')}"
    finally:
        conn.close()


def test_a_served_zeroprobe_leaks_no_secret_anywhere(spawn: Spawn, stack: Stack) -> None:
    found = stack.found
    port = free_port()
    proc = spawn("serve", "--contexts", str(stack.contexts), "--port", str(port), env=stack.environ)
    wait_until_every_probe_ran(proc, port, stack)
    time.sleep(2.5)  # a second round of failing runs: repeated failures are logged too

    token = found.auth.value
    answers: dict[str, tuple[int, str]] = {}
    paths = ["/", "/metrics", "/liveness", "/livez", "/readyz", "/api/v1/results", "/openapi.json"]
    for service_id in stack.service_ids:
        paths += [
            f"/{service_id}",
            f"/ui/{service_id}",
            f"/api/v1/results/{service_id}",
            f"/api/v1/results/{service_id}/history",
        ]
        answers[f"PUT /{service_id}"] = authed(port, "PUT", f"/{service_id}", token)
    for path in paths:
        answers[f"GET {path}"] = authed(port, "GET", path, token)
    # A spec quoting the password in a wrong field: the reload answer and its log lines.
    (stack.contexts / "leak.bad.yaml").write_text(
        spec_yaml(
            "leak.bad", "mongo_replication_lag", stack.environ["ZEROPROBE_CONNECTION_MONGO_AUTH"]
        )
        + f"description: {{uri: 'http://u:{found.prom_basic.value}@h/'}}\n",
        encoding="utf-8",
    )
    answers["POST /-/reload"] = authed(port, "POST", "/-/reload", token)
    code, _ = proc.stop()

    assert code == 0, proc.stderr
    outputs = {where: text for where, (_, text) in answers.items()}
    outputs.update(stdout=proc.stdout, stderr=proc.stderr)
    assert_nothing_leaks(outputs, found)
    # The failures did happen and were reported, not swallowed to hide them.
    assert "leak.mongo.auth: none -> RED: MongoDB refused the credentials" in proc.stderr
    assert answers["POST /-/reload"][0] == 422, answers["POST /-/reload"]
    assert "leak.bad.yaml" in answers["POST /-/reload"][1]
    for service_id in stack.service_ids:
        status, text = answers[f"PUT /{service_id}"]
        assert status == 200, text
        document = json.loads(text.split("\n", 1)[1])
        assert document[service_id]["status"] in ("RED", "YELLOW"), (service_id, document)


def wait_until_every_probe_ran(proc: Proc, port: int, stack: Stack) -> None:
    deadline = time.monotonic() + 30
    waiting = set(stack.service_ids)
    while waiting and time.monotonic() < deadline:
        for service_id in sorted(waiting):
            if (
                _up(port)
                and authed(port, "GET", f"/{service_id}", stack.found.auth.value)[0] == 200
            ):
                waiting.discard(service_id)
        time.sleep(0.2)
    assert not waiting, (waiting, proc.stderr[-3000:])


def _up(port: int) -> bool:
    try:
        request(port, "GET", "/livez")
    except OSError:
        return False
    return True


def test_check_and_run_print_no_secret(spawn: Spawn, stack: Stack) -> None:
    found = stack.found
    (stack.contexts / "leak.bad.yaml").write_text(
        spec_yaml(
            "leak.bad", "mongo_replication_lag", stack.environ["ZEROPROBE_CONNECTION_MONGO_AUTH"]
        )
        + f"bearer: {{token: 'Authorization: Bearer {found.prom_bearer.value}'}}\n",
        encoding="utf-8",
    )
    check = spawn("check", str(stack.contexts), env=stack.environ)
    assert check.finish() == 1
    outputs = {"check stdout": check.stdout, "check stderr": check.stderr}
    assert "leak.bad.yaml" in check.stderr

    (stack.contexts / "leak.bad.yaml").unlink()
    for service_id in (
        "leak.mongo.auth",
        "leak.mongo.badport",
        "leak.prom.500",
        "leak.am",
        "leak.jk",
    ):
        run = spawn("run", service_id, "--contexts", str(stack.contexts), env=stack.environ)
        assert run.finish() == 0, run.stderr
        outputs[f"run {service_id} stdout"] = run.stdout
        outputs[f"run {service_id} stderr"] = run.stderr
        assert json.loads(run.stdout)[service_id]["status"] in ("RED", "YELLOW"), run.stdout

    assert_nothing_leaks(outputs, found)


# In-process: an exception that is the whole URI, logged with its traceback -----------------


async def test_an_exception_quoting_the_uri_leaks_nowhere(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = Secrets()
    uri = f"mongodb+srv://monitor:{uri_password(found.mongo)}@cluster-{found.mongo.core}.example.invalid/"

    async def probe(spec: Any, ctx: Any) -> Any:
        raise RuntimeError(uri)  # a library that puts the whole connection string in str()

    builtin = installed_kinds().installed["mongo_replication_lag"].kind
    kind = Kind(name=builtin.name, spec=builtin.spec, probe=probe, grade=builtin.grade)
    spec = MongoReplicationLagSpec.model_validate(
        {
            "service_id": "leak.boom",
            "kind": "mongo_replication_lag",
            "connection": "boom",
            "interval": "2s",
            "timeout": "1s",
        }
    )
    environ = {"ZEROPROBE_CONNECTION_BOOM": uri}
    redact = Redactor.from_environ(environ)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, sys.excepthook)
    configure_logging(redact, "DEBUG")
    try:
        engine = Engine(
            [ContextFile(spec=spec, path="leak.boom.yaml", line=1)],
            Settings(),
            environ,
            kinds={"mongo_replication_lag": kind},
            redact=redact,
        )
        result = await engine.run_once("leak.boom")
        metrics = engine.metrics.render().decode()
        await engine.stop()
        logging.getLogger("some.library").error("failed on %s", uri, exc_info=RuntimeError(uri))
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        sys.excepthook = saved[2]
        logging.captureWarnings(False)
    logs = capsys.readouterr().err

    assert result.grade is Grade.RED
    assert "probe failed unexpectedly" in result.lines[0].text
    assert "Traceback" in logs and "leak.boom" in logs, logs  # it was logged, with the traceback
    assert_nothing_leaks(
        {
            "line": result.action_body,
            "document": result.document.decode(),
            "metrics": metrics,
            "logs": logs,
        },
        found,
    )


# The redactor itself, with secrets made now ----------------------------------------------


def test_every_form_of_a_uri_password_is_scrubbed() -> None:
    secret = password("monitor")
    for scheme in ("mongodb", "mongodb+srv", "http", "https"):
        uri = f"{scheme}://monitor:{uri_password(secret)}@db1.example.invalid:27017,db2:27017/x"
        redact = Redactor([uri])
        text = " | ".join(
            f"{name}: {form}" for name, form in secret.forms().items() if name != "core"
        )
        scrubbed = redact(f"{uri} failed; {text}")
        assert_nothing_leaks({scheme: scrubbed}, Secrets(mongo=secret))
        assert scrubbed.startswith("*** failed"), scrubbed


def test_credential_shapes_are_scrubbed_without_knowing_the_values() -> None:
    value = token("ghp_").value
    unknown = Redactor()
    for text in (
        f"mongodb+srv://u:{value}@cluster0.example.invalid/?retryWrites=true",
        f"GET https://api.example.invalid/x?private_token={value}&page=2",
        f"{{'PRIVATE-TOKEN': '{value}', 'Accept': 'json'}}",
        f"x-api-key: {value}",
        f"failed with bearer {value}",
        f"leaked {value} in a log",  # a GitHub token's own shape
        "mongodb%3A%2F%2Fu%3A" + quote(value, safe="") + "%40host",
    ):
        assert value not in unknown(text) and quote(value, safe="") not in unknown(text), text


def test_from_environ_knows_connection_auth_and_token_variables_but_not_ordinary_ones() -> None:
    github, auth, jenkins = token("ghp_"), token("zpauth"), token("jk")
    redact = Redactor.from_environ(
        {
            "ZEROPROBE_CONNECTION_PROM": "http://prometheus.example.invalid:9090",
            "ZEROPROBE_AUTH_TOKEN": auth.value,
            "GITHUB_TOKEN": github.value,
            "JENKINS_API_TOKEN": f"robot:{jenkins.value}",
            "TOKEN_TTL_S": "3600",
            "HOME": "/home/zeroprobe",
        }
    )
    text = f"{github.value} {auth.value} {jenkins.value} lag 3600ms in /home/zeroprobe"
    assert redact(text) == "*** *** *** lag 3600ms in /home/zeroprobe"
    assert redact("- Prometheus at prometheus.example.invalid:9090 did not answer") == (
        "- Prometheus at prometheus.example.invalid:9090 did not answer"
    )


def test_the_log_filter_scrubs_messages_arguments_and_tracebacks() -> None:
    secret = token("tok")
    redact = Redactor([secret.value])
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", (secret.value,), None)
    try:
        raise RuntimeError(f"boom {secret.value}")
    except RuntimeError as exc:
        record.exc_info = (RuntimeError, exc, exc.__traceback__)
    # Another handler formatted the traceback first: the filter scrubs it all the same.
    record.exc_text = logging.Formatter().formatException(record.exc_info)
    record.stack_info = f"stack {secret.value}"
    assert RedactingFilter(redact).filter(record)
    formatted = logging.Formatter().format(record)
    assert secret.value not in formatted and "Traceback" in formatted, formatted


def test_an_unescaped_password_and_a_token_with_a_newline_are_known_whole() -> None:
    pw, tok = f"p@ss#w?rd/{core()}", token("tok")
    redact = Redactor([f"mongodb://monitor:{pw}@db1.example.invalid:27017/?x=1", f"{tok.value}\n"])

    assert redact(f"auth failed for {pw}; token {tok.value}.") == "auth failed for ***; token ***."


def test_a_text_scrubbed_before_a_secret_was_learned_is_scrubbed_again_after() -> None:
    """The scrubber remembers texts it scrubbed; learning a secret forgets them."""
    token = "late-" + secrets.token_hex(8)
    text = f"- the target said: no such user {token}"
    redact = Redactor()

    assert redact(text) == text
    assert redact(text) == text  # remembered
    redact.add(token)

    assert token not in redact(text)
    assert redact(text) == "- the target said: no such user ***"


def test_remembered_texts_are_bounded_and_still_scrubbed() -> None:
    token = "tok-" + secrets.token_hex(8)
    redact = Redactor([token])
    texts = [f"line {i} {token}" for i in range(5000)] + [f"long {token} " + "x" * 5000]

    for _ in range(2):
        assert all(token not in redact(text) for text in texts)
        assert len(redact._memo) <= MEMO_ENTRIES
