"""Access control over real sockets: the token on every protected route, the open health
endpoints, the token file, bad settings, and the token never in a log.

In-process servers are aiohttp test servers on 127.0.0.1 serving `create_app` of a staged
engine; the settings and log tests run `zeroprobe serve` as a process.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy
from pytest_aiohttp import AiohttpServer

from schemas.grading import Grade, Line
from tests.conftest import TESTS
from tests.status_page_support import Script, scripted, stage, staged_engine
from zeroprobe.config.access import (
    AUTH_PROTECT_ENV,
    AUTH_TOKEN_ENV,
    AUTH_TOKEN_FILE_ENV,
    MIN_TOKEN_CHARS,
    OPEN_ENDPOINTS,
)
from zeroprobe.config.settings import Settings, SettingsError
from zeroprobe.engine.core import Engine
from zeroprobe.web.app import create_app
from zeroprobe.web.auth import TokenGate
from zeroprobe.web.page import STATIC_FILES

TOKEN = "zp-test-7f3a9c1e5b2d4068-token"
KNOWN = "auth.probe"
ZEROPROBE = str(Path(sys.executable).with_name("zeroprobe"))
SHIPPED = TESTS.parent / "contexts"
CHALLENGES = ['Bearer realm="zeroprobe"', 'Basic realm="zeroprobe"']


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


GOOD_CREDENTIALS = {
    "bearer": f"Bearer {TOKEN}",
    "bearer, other case": f"bearer {TOKEN}",
    "basic, any user": basic("oncall", TOKEN),
    "basic, no user": basic("", TOKEN),
}
WRONG_CREDENTIALS = {
    "none": None,
    "empty": "",
    "bearer, wrong": "Bearer wrong-but-long-enough-token-value",
    "bearer, one char more": f"Bearer {TOKEN}x",
    "bearer, one char less": f"Bearer {TOKEN[:-1]}",
    "bearer, no token": "Bearer",
    "token without scheme": TOKEN,
    "other scheme": f"Token {TOKEN}",
    "basic, wrong password": basic("oncall", "wrong-password-wrong-password"),
    "basic, token as user name": basic(TOKEN, "x"),
    "basic, not base64": "Basic !!!not-base64!!!",
    "basic, no colon": "Basic " + base64.b64encode(TOKEN.encode()).decode(),
}

# (method, route template, a concrete path): every route of the app but the health endpoints.
PROTECTED = [
    ("GET", "/", "/"),
    ("HEAD", "/", "/"),
    ("GET", "/ui/{service_id}", f"/ui/{KNOWN}"),
    ("HEAD", "/ui/{service_id}", f"/ui/{KNOWN}"),
    *[(m, f"/static/{name}", f"/static/{name}") for name in STATIC_FILES for m in ("GET", "HEAD")],
    ("GET", "/api/v1/results", "/api/v1/results"),
    ("HEAD", "/api/v1/results", "/api/v1/results"),
    ("GET", "/api/v1/results/{service_id}", f"/api/v1/results/{KNOWN}"),
    ("HEAD", "/api/v1/results/{service_id}", f"/api/v1/results/{KNOWN}"),
    ("GET", "/api/v1/results/{service_id}/history", f"/api/v1/results/{KNOWN}/history"),
    ("HEAD", "/api/v1/results/{service_id}/history", f"/api/v1/results/{KNOWN}/history"),
    ("GET", "/api/v1/notifications", "/api/v1/notifications"),
    ("HEAD", "/api/v1/notifications", "/api/v1/notifications"),
    ("GET", "/openapi.json", "/openapi.json"),
    ("HEAD", "/openapi.json", "/openapi.json"),
    ("PUT", "/{service_id}", f"/{KNOWN}"),
    ("GET", "/{service_id}", f"/{KNOWN}"),
    ("HEAD", "/{service_id}", f"/{KNOWN}"),
    ("POST", "/-/reload", "/-/reload"),
]
OPEN = [(m, path, path) for path in OPEN_ENDPOINTS.values() for m in ("GET", "HEAD")]


def engine_with(tmp_path: Path, **settings: Any) -> Engine:
    """A staged engine with one result. Its contexts folder (for /-/reload) is empty: a
    reload, the last request of PROTECTED, applies an empty set."""
    folder = tmp_path / "contexts"
    folder.mkdir(exist_ok=True)
    config = Settings(contexts=str(folder), **settings)
    engine = Engine([scripted(KNOWN)], config, {}, kinds=Script().kinds())
    stage(engine, KNOWN, [Line("- all good", Grade.GREEN)])
    return engine


@pytest.fixture
async def guarded(aiohttp_server: AiohttpServer, tmp_path: Path) -> AsyncIterator[TestServer]:
    engine = engine_with(tmp_path, auth_token=TOKEN)
    try:
        yield await aiohttp_server(create_app(engine, start_engine=False))
    finally:
        await engine.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def send(
    session: aiohttp.ClientSession, server: TestServer, method: str, path: str, auth: str | None
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    headers = {"Authorization": auth} if auth is not None else {}
    url = f"http://127.0.0.1:{server.port}{path}"
    async with session.request(method, url, headers=headers, allow_redirects=False) as response:
        return response.status, response.headers, await response.read()


def test_every_route_is_covered_here() -> None:
    """A new route must be added to PROTECTED or OPEN above, so its access is tested."""
    engine = staged_engine([scripted(KNOWN)])
    app = create_app(engine, start_engine=False)
    routed = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    covered = {(method, template) for method, template, _ in PROTECTED + OPEN}

    assert routed == covered


@pytest.mark.parametrize("credentials", WRONG_CREDENTIALS, ids=list(WRONG_CREDENTIALS))
async def test_protected_routes_refuse_missing_or_wrong_credentials(
    guarded: TestServer, session: aiohttp.ClientSession, credentials: str
) -> None:
    sent = WRONG_CREDENTIALS[credentials]
    for method, _, path in PROTECTED:
        status, headers, body = await send(session, guarded, method, path, sent)

        assert status == 401, (method, path)
        assert headers.getall("WWW-Authenticate") == CHALLENGES, (method, path)
        if method != "HEAD":
            assert headers["Content-Type"].startswith("application/json")
            document = json.loads(body)
            assert document["status"] == 401
            assert "token" in document["error"]
        for leaked in (sent or "", TOKEN):
            words = [w for w in re.split(r"[\s:]+", leaked) if len(w) >= 8]
            for word in words:
                assert word.encode() not in body, (method, path)
                assert all(word not in value for value in headers.values())


@pytest.mark.parametrize("credentials", GOOD_CREDENTIALS, ids=list(GOOD_CREDENTIALS))
async def test_protected_routes_answer_with_the_token(
    guarded: TestServer, session: aiohttp.ClientSession, credentials: str
) -> None:
    for method, _, path in PROTECTED:
        status, headers, _ = await send(
            session, guarded, method, path, GOOD_CREDENTIALS[credentials]
        )

        assert status == 200, (method, path, status)
        assert "WWW-Authenticate" not in headers


async def test_unknown_ids_and_paths_say_nothing_without_the_token(
    guarded: TestServer, session: aiohttp.ClientSession
) -> None:
    """An unknown id is 401 like a known one: without the token no id can be probed for."""
    good = f"Bearer {TOKEN}"
    for method in ("PUT", "GET"):
        assert (await send(session, guarded, method, "/no.such.id", None))[0] == 401
        assert (await send(session, guarded, method, "/no.such.id", good))[0] == 404
    assert (await send(session, guarded, "GET", "/ui/no.such.id", None))[0] == 401
    assert (await send(session, guarded, "GET", "/api/v1/results/no.such.id", None))[0] == 401
    # No route: the same JSON 404 / 405 with or without the token (it names no probe).
    assert (await send(session, guarded, "GET", "/a/b/c", None))[0] == 404
    assert (await send(session, guarded, "DELETE", f"/{KNOWN}", None))[0] == 405


@pytest.mark.parametrize(("method", "template", "path"), OPEN)
async def test_health_endpoints_stay_open_by_default(
    guarded: TestServer, session: aiohttp.ClientSession, method: str, template: str, path: str
) -> None:
    status, headers, _ = await send(session, guarded, method, path, None)

    assert status in (200, 503)  # 503: the unstarted engine is not ready; never 401
    assert "WWW-Authenticate" not in headers


@pytest.mark.parametrize("name", list(OPEN_ENDPOINTS))
async def test_each_health_endpoint_can_be_closed(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession, tmp_path: Path, name: str
) -> None:
    settings = Settings.from_environ({AUTH_TOKEN_ENV: TOKEN, AUTH_PROTECT_ENV: name})
    engine = engine_with(
        tmp_path, auth_token=settings.auth_token, auth_protect=settings.auth_protect
    )
    try:
        server = await aiohttp_server(create_app(engine, start_engine=False))
        for other, path in OPEN_ENDPOINTS.items():
            refused, headers, _ = await send(session, server, "GET", path, None)
            allowed, _, _ = await send(session, server, "GET", path, f"Bearer {TOKEN}")
            if other == name:
                assert refused == 401, path
                assert headers.getall("WWW-Authenticate") == CHALLENGES
            else:
                assert refused in (200, 503), path
            assert allowed in (200, 503), path
    finally:
        await engine.stop()


async def test_without_a_token_everything_is_open(
    aiohttp_server: AiohttpServer, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    engine = engine_with(tmp_path)
    try:
        server = await aiohttp_server(create_app(engine, start_engine=False))
        for method, _, path in PROTECTED + OPEN:
            status, headers, _ = await send(session, server, method, path, None)
            assert status in (200, 503), (method, path)
            assert "WWW-Authenticate" not in headers
    finally:
        await engine.stop()


def test_gate_compares_the_whole_token() -> None:
    gate = TokenGate(TOKEN)

    assert all(gate.allows(value) for value in GOOD_CREDENTIALS.values())
    assert not any(gate.allows(value) for value in WRONG_CREDENTIALS.values())
    assert TOKEN not in repr(gate)


# Settings ---------------------------------------------------------------------------------------


def test_token_and_protect_come_from_the_environment(tmp_path: Path) -> None:
    assert Settings.from_environ({}).auth_token is None
    assert Settings.from_environ({AUTH_TOKEN_ENV: f" {TOKEN}\n"}).auth_token == TOKEN
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    from_file = Settings.from_environ(
        {AUTH_TOKEN_FILE_ENV: str(secret), AUTH_PROTECT_ENV: "metrics, LIVEZ"}
    )
    assert from_file.auth_token == TOKEN
    assert from_file.auth_protect == {"metrics", "livez"}
    assert TOKEN not in repr(from_file)


BAD_SETTINGS = {
    "both set": ({AUTH_TOKEN_ENV: TOKEN, AUTH_TOKEN_FILE_ENV: "{file}"}, AUTH_TOKEN_FILE_ENV),
    "missing file": ({AUTH_TOKEN_FILE_ENV: "{dir}/missing"}, AUTH_TOKEN_FILE_ENV),
    "a folder": ({AUTH_TOKEN_FILE_ENV: "{dir}"}, AUTH_TOKEN_FILE_ENV),
    "empty file": ({AUTH_TOKEN_FILE_ENV: "{empty}"}, AUTH_TOKEN_FILE_ENV),
    "file name empty": ({AUTH_TOKEN_FILE_ENV: ""}, AUTH_TOKEN_FILE_ENV),
    "empty token": ({AUTH_TOKEN_ENV: "  "}, AUTH_TOKEN_ENV),
    "short token": ({AUTH_TOKEN_ENV: "x" * (MIN_TOKEN_CHARS - 1)}, AUTH_TOKEN_ENV),
    "token with a space": ({AUTH_TOKEN_ENV: "two words, both long enough"}, AUTH_TOKEN_ENV),
    "unknown endpoint": ({AUTH_TOKEN_ENV: TOKEN, AUTH_PROTECT_ENV: "metrics,status"}, "status"),
    "protect without token": ({AUTH_PROTECT_ENV: "metrics"}, AUTH_PROTECT_ENV),
}


def bad_environ(tmp_path: Path, case: str) -> tuple[dict[str, str], str]:
    (tmp_path / "token").write_text(TOKEN)
    (tmp_path / "empty").write_text("\n")
    values, named = BAD_SETTINGS[case]
    places = {"file": tmp_path / "token", "dir": tmp_path, "empty": tmp_path / "empty"}
    return {k: v.format(**places) for k, v in values.items()}, named


@pytest.mark.parametrize("case", BAD_SETTINGS)
def test_bad_settings_are_one_clear_line(tmp_path: Path, case: str) -> None:
    environ, named = bad_environ(tmp_path, case)

    with pytest.raises(SettingsError) as raised:
        Settings.from_environ(environ)

    message = str(raised.value)
    assert named in message
    assert "\n" not in message
    assert TOKEN not in message


@pytest.mark.parametrize("case", ["both set", "missing file", "empty file", "unknown endpoint"])
def test_serve_refuses_bad_settings_without_a_traceback(tmp_path: Path, case: str) -> None:
    environ, named = bad_environ(tmp_path, case)
    done = subprocess.run(
        [ZEROPROBE, "serve", "--contexts", str(tmp_path), "--port", "0"],
        env=clean_env(**environ),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("zeroprobe: ") and named in lines[0]
    assert "Traceback" not in done.stderr
    assert TOKEN not in done.stderr + done.stdout


# `zeroprobe serve` as a process: the token file, and the token never in its output ----------


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROPROBE_")}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Serving:
    def __init__(self, popen: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.popen = popen
        self.url = f"http://127.0.0.1:{port}"
        self.log = log

    def request(self, method: str, path: str, auth: str | None = None) -> int:
        headers = {"Authorization": auth} if auth is not None else {}
        request = urllib.request.Request(self.url + path, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as exc:
            exc.read()
            return exc.code


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(**environ: str) -> Serving:
        contexts = tmp_path / "contexts"
        contexts.mkdir(exist_ok=True)
        shipped = SHIPPED / "payments.api.errorrate.md"
        (contexts / shipped.name).write_text(shipped.read_text())
        port = free_port()
        log = tmp_path / f"serve-{len(started)}.log"
        env = clean_env(
            ZEROPROBE_CONTEXTS=str(contexts),
            ZEROPROBE_PORT=str(port),
            ZEROPROBE_LOG_LEVEL="DEBUG",
            # Nothing listens there: the probe fails fast, which is fine for access control.
            ZEROPROBE_CONNECTION_PROMETHEUS="http://127.0.0.1:9",
            **environ,
        )
        with log.open("wb") as out:
            popen = subprocess.Popen([ZEROPROBE, "serve"], env=env, stdout=out, stderr=out)
        started.append(popen)
        serving = Serving(popen, port, log)
        deadline = time.monotonic() + 20
        while True:
            assert popen.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "zeroprobe serve did not start"
            try:
                serving.request("GET", "/livez")
                break
            except OSError:  # not listening yet
                time.sleep(0.1)
        return serving

    yield start
    for popen in started:
        if popen.poll() is None:
            popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


def stopped_output(serving: Serving) -> str:
    serving.popen.send_signal(signal.SIGTERM)
    serving.popen.wait(10)
    return serving.log.read_text()


def test_token_file_of_a_mounted_secret(serve_process: Any, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "token").write_text(TOKEN + "\n")  # as `kubectl create secret --from-file`
    serving = serve_process(ZEROPROBE_AUTH_TOKEN_FILE=str(secret / "token"))

    assert serving.request("GET", "/api/v1/results") == 401
    assert serving.request("GET", "/api/v1/results", f"Bearer {TOKEN}") == 200
    assert serving.request("GET", "/", basic("oncall", TOKEN)) == 200
    assert serving.request("GET", "/metrics") == 200
    output = stopped_output(serving)
    assert "access control is on" in output
    assert TOKEN not in output


def test_token_never_reaches_the_logs(serve_process: Any) -> None:
    serving = serve_process(ZEROPROBE_AUTH_TOKEN=TOKEN, ZEROPROBE_AUTH_PROTECT="metrics")
    wrong = "wrong-guess-0123456789abcdef"
    for auth in (None, f"Bearer {wrong}", basic("x", wrong), f"Bearer {TOKEN}", basic("x", TOKEN)):
        for method, path in (("PUT", "/payments.api.errorrate"), ("GET", "/metrics")):
            serving.request(method, path, auth)
    serving.request("POST", "/-/reload", f"Bearer {TOKEN}")

    output = stopped_output(serving)
    assert "access control is on: a token is required everywhere except" in output
    assert "/metrics" not in output.split("access control is on", 1)[1].splitlines()[0]
    encoded = base64.b64encode(f"x:{TOKEN}".encode()).decode()
    for secret in (TOKEN, wrong, encoded):
        assert secret not in output


def test_serve_says_when_access_control_is_off(serve_process: Any) -> None:
    serving = serve_process()

    assert serving.request("PUT", "/payments.api.errorrate") in (200, 503)
    output = stopped_output(serving)
    assert "access control is off" in output


def test_app_has_no_middleware() -> None:
    """Access control and JSON errors cost the PUT path nothing when unused (app.py)."""
    engine = staged_engine([scripted(KNOWN)], auth_token=TOKEN)
    app: web.Application = create_app(engine, start_engine=False)

    assert list(app.middlewares) == []
