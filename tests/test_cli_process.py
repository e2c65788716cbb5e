"""The `zeroprobe` command as real processes: serve, run and demo, signals and exit codes.

Servers listen on 127.0.0.1 only, on free ports picked by binding and closing a socket.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schemas.zero_problem import ZeroProblemDocument
from zeroprobe.simulators.mongo import SimulatedReplicaSet

REPO = Path(__file__).resolve().parents[1]
# The console script of the environment running the tests (the project's .venv).
ZEROPROBE = str(Path(sys.executable).with_name("zeroprobe"))
LOCALHOST = "127.0.0.1"

SERVICE_ID = "cli.mongo.lag"
# A label with a dash: it resolves to ZEROPROBE_CONNECTION_CLI_RS.
LABEL = "cli-rs"
CONNECTION_VAR = "ZEROPROBE_CONNECTION_CLI_RS"
DEMO_SERVICE_ID = "mhp.zeroproblem.mongo.replcationlag"
STOP_LIMIT_S = 5.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ZEROPROBE_* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROPROBE_")}
    env.update(extra)
    return env


def write_spec(
    folder: Path,
    *,
    service_id: str = SERVICE_ID,
    connection: str = LABEL,
    interval: str = "2s",
    timeout: str = "1s",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{service_id}.yaml"
    path.write_text(
        f"service_id: {service_id}\n"
        "kind: mongo_replication_lag\n"
        f"connection: {connection}\n"
        f"interval: {interval}\n"
        f"timeout: {timeout}\n",
        encoding="utf-8",
    )
    return path


@dataclass
class Proc:
    """A started `zeroprobe` process whose output goes to files (no pipe can fill up)."""

    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, float]:
        """Send `sig`; the exit code and the seconds the process took to exit."""
        assert self.popen.poll() is None, f"exited early:\n{self.stderr}"
        started = time.monotonic()
        self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout=STOP_LIMIT_S + 10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {STOP_LIMIT_S + 10}s after {sig.name}:\n{self.stderr}")
        return code, time.monotonic() - started

    def finish(self, timeout_s: float = 30) -> int:
        """Wait for a process that ends by itself."""
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout_s}s:\n{self.stderr}")


Spawn = Callable[..., Proc]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start `zeroprobe *args`; every process still running at the end is killed."""
    started: list[Proc] = []

    def start(
        *args: str, env: dict[str, str], cwd: Path = REPO, executable: str | Path = ZEROPROBE
    ) -> Proc:
        n = len(started)
        out_path, err_path = tmp_path / f"proc{n}.out", tmp_path / f"proc{n}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            popen = subprocess.Popen(
                [str(executable), *args], stdout=out, stderr=err, env=env, cwd=cwd
            )
        proc = Proc(popen, out_path, err_path)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.popen.poll() is None:
                proc.popen.kill()
            proc.popen.wait(timeout=10)


def request(
    port: int, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(LOCALHOST, port, timeout=5)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def wait_for(
    proc: Proc, port: int, method: str, path: str, *, timeout_s: float, status: int = 200
) -> tuple[bytes, float]:
    """Poll until `method path` answers `status`; its body and the seconds it took."""
    started = time.monotonic()
    last: object = None
    while time.monotonic() - started < timeout_s:
        if proc.popen.poll() is not None:
            pytest.fail(f"exited with {proc.popen.returncode}:\n{proc.stderr}")
        try:
            got, _, body = request(port, method, path)
        except OSError as exc:
            last = exc
        else:
            if got == status:
                return body, time.monotonic() - started
            last = (got, body)
        time.sleep(0.1)
    pytest.fail(f"{method} {path} never answered {status} (last: {last!r}):\n{proc.stderr}")


def assert_document(raw: bytes, service_id: str) -> dict[str, Any]:
    ZeroProblemDocument.model_validate_json(raw)
    document: dict[str, Any] = json.loads(raw)
    assert list(document) == [service_id]
    status: dict[str, Any] = document[service_id]
    assert status["messages"][0]["statusBody"] == service_id
    return status


# serve -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_answers_put_and_exits_0_on_signal(
    spawn: Spawn, tmp_path: Path, replica_set: SimulatedReplicaSet, sig: signal.Signals
) -> None:
    contexts = tmp_path / "contexts"
    write_spec(contexts)
    port = free_port()
    proc = spawn(
        "serve",
        "--contexts",
        str(contexts),
        "--port",
        str(port),
        env=clean_env(**{CONNECTION_VAR: replica_set.uri}),
    )

    raw, took_s = wait_for(proc, port, "PUT", f"/{SERVICE_ID}", timeout_s=15)
    status = assert_document(raw, SERVICE_ID)
    assert status["status"] == "GREEN", status
    assert took_s < 10
    code, stop_s = proc.stop(sig)

    assert code == 0, proc.stderr
    assert stop_s < STOP_LIMIT_S
    assert "Traceback" not in proc.stderr


def test_serve_exits_0_promptly_while_a_probe_run_is_in_flight(
    spawn: Spawn, tmp_path: Path
) -> None:
    # A "server" that accepts TCP connections and never says a word: every run hangs
    # until its 5 s timeout, so a run is in flight when the signal arrives.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind((LOCALHOST, 0))
        silent.listen(16)
        silent_port = silent.getsockname()[1]
        contexts = tmp_path / "contexts"
        write_spec(contexts, interval="10s", timeout="5s")
        port = free_port()
        proc = spawn(
            "serve",
            "--contexts",
            str(contexts),
            "--port",
            str(port),
            env=clean_env(
                **{CONNECTION_VAR: f"mongodb://{LOCALHOST}:{silent_port}/?directConnection=true"}
            ),
        )
        wait_for(proc, port, "GET", "/livez", timeout_s=15)
        # The first run starts at once and lasts 5 s: no result yet.
        status, _, _ = request(port, "PUT", f"/{SERVICE_ID}")
        assert status == 503
        time.sleep(0.5)

        code, stop_s = proc.stop(signal.SIGTERM)

    assert code == 0, proc.stderr
    assert stop_s < STOP_LIMIT_S
    assert "Traceback" not in proc.stderr, proc.stderr


def test_serve_reads_contexts_host_and_port_from_the_environment(
    spawn: Spawn, tmp_path: Path, replica_set: SimulatedReplicaSet
) -> None:
    contexts = tmp_path / "specs"
    write_spec(contexts)
    port = free_port()
    # Run from a folder without contexts/: the specs can only come from ZEROPROBE_CONTEXTS.
    proc = spawn(
        "serve",
        env=clean_env(
            ZEROPROBE_CONTEXTS=str(contexts),
            ZEROPROBE_HOST=LOCALHOST,
            ZEROPROBE_PORT=str(port),
            **{CONNECTION_VAR: replica_set.uri},
        ),
        cwd=tmp_path,
    )

    raw, _ = wait_for(proc, port, "PUT", f"/{SERVICE_ID}", timeout_s=15)
    assert_document(raw, SERVICE_ID)
    code, _ = proc.stop()
    assert code == 0, proc.stderr


def test_serve_listens_on_the_host_of_zeroprobe_host(spawn: Spawn, tmp_path: Path) -> None:
    # 127.0.0.2 is loopback too, but a different address: answering there and refusing on
    # 127.0.0.1 shows the variable chose the listen address.
    contexts = tmp_path / "contexts"
    write_spec(contexts)
    port = free_port()
    proc = spawn(
        "serve",
        "--contexts",
        str(contexts),
        env=clean_env(ZEROPROBE_HOST="127.0.0.2", ZEROPROBE_PORT=str(port)),
    )
    deadline = time.monotonic() + 15
    status = None
    while time.monotonic() < deadline and status is None:
        assert proc.popen.poll() is None, proc.stderr
        conn = http.client.HTTPConnection("127.0.0.2", port, timeout=5)
        try:
            conn.request("GET", "/livez")
            status = conn.getresponse().status
        except OSError:
            time.sleep(0.1)
        finally:
            conn.close()
    assert status == 200, proc.stderr
    with pytest.raises(ConnectionRefusedError):
        request(port, "GET", "/livez")
    code, _ = proc.stop()
    assert code == 0, proc.stderr


def test_serve_with_invalid_specs_reports_every_error_and_exits_nonzero(
    spawn: Spawn, tmp_path: Path
) -> None:
    contexts = tmp_path / "contexts"
    contexts.mkdir()
    (contexts / "typo.yaml").write_text(
        "service_id: cli.typo\nkind: mongo_replication_lag\nconnection: rs\nintervall: 5s\n",
        encoding="utf-8",
    )
    (contexts / "when.yaml").write_text(
        "service_id: cli.when\nkind: mongo_replication_lag\ninterval: soon\nconnection: rs\n",
        encoding="utf-8",
    )
    port = free_port()
    proc = spawn("serve", "--contexts", str(contexts), "--port", str(port), env=clean_env())

    code = proc.finish()

    stderr = proc.stderr
    assert code != 0
    assert re.search(r"^\S*typo\.yaml:4: intervall: \S", stderr, re.MULTILINE), stderr
    assert re.search(r"^\S*when\.yaml:3: interval: \S", stderr, re.MULTILINE), stderr
    assert "Traceback" not in stderr
    with pytest.raises(OSError):
        request(port, "GET", "/livez")


def test_serve_with_a_missing_contexts_folder_exits_nonzero(spawn: Spawn, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    proc = spawn("serve", "--contexts", str(missing), "--port", str(free_port()), env=clean_env())

    code = proc.finish()

    assert code != 0
    assert str(missing) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_connection_secrets_never_leave_the_process(spawn: Spawn, tmp_path: Path) -> None:
    password = "Zp-S3cr3t-9f4e7"
    dead_port = free_port()  # nothing listens there: connection refused
    contexts = tmp_path / "contexts"
    write_spec(contexts, service_id="cli.secret.refused", connection="secret-refused")
    write_spec(contexts, service_id="cli.secret.badport", connection="secret-badport")
    port = free_port()
    proc = spawn(
        "serve",
        "--contexts",
        str(contexts),
        "--port",
        str(port),
        env=clean_env(
            ZEROPROBE_CONNECTION_SECRET_REFUSED=(
                f"mongodb://zpuser:{password}@{LOCALHOST}:{dead_port}/?authSource=admin"
            ),
            # An unusable URI: the driver's own error message quotes it.
            ZEROPROBE_CONNECTION_SECRET_BADPORT=f"mongodb://zpuser:{password}@{LOCALHOST}:99999/",
            ZEROPROBE_LOG_LEVEL="DEBUG",
        ),
    )

    answers: list[bytes] = []
    for service_id in ("cli.secret.refused", "cli.secret.badport"):
        raw, _ = wait_for(proc, port, "PUT", f"/{service_id}", timeout_s=15)
        assert assert_document(raw, service_id)["status"] == "RED"
        answers.append(raw)
    time.sleep(2.5)  # a second round of failing runs
    for method, path in [
        ("PUT", "/cli.secret.refused"),
        ("GET", "/cli.secret.badport"),
        ("GET", "/metrics"),
        ("GET", "/liveness"),
        ("GET", "/readyz"),
        ("GET", "/"),
    ]:
        _, headers, body = request(port, method, path)
        answers.append(body + json.dumps(headers).encode())
    code, stop_s = proc.stop()

    assert code == 0, proc.stderr
    assert stop_s < STOP_LIMIT_S
    outputs = {"stdout": proc.stdout, "stderr": proc.stderr}
    outputs.update({f"answer {i}": a.decode("utf-8", "replace") for i, a in enumerate(answers)})
    assert "cli.secret.refused" in outputs["stderr"], "the failures were logged"
    for where, text in outputs.items():
        assert password not in text, where
        assert "zpuser:" not in text, where


# run -------------------------------------------------------------------------------------------


def test_run_prints_the_document_and_exits_0(
    spawn: Spawn, tmp_path: Path, replica_set: SimulatedReplicaSet
) -> None:
    contexts = tmp_path / "contexts"
    write_spec(contexts)
    replica_set.set_lag_ms(2, 6120)
    proc = spawn(
        "run",
        SERVICE_ID,
        "--contexts",
        str(contexts),
        env=clean_env(**{CONNECTION_VAR: replica_set.uri}),
    )

    code = proc.finish()

    assert code == 0, proc.stderr
    status = assert_document(proc.stdout.encode(), SERVICE_ID)
    assert status["status"] == "YELLOW"
    assert replica_set.hosts[2] in status["messages"][0]["actionBody"]


def test_run_of_an_unknown_id_exits_nonzero_naming_it(spawn: Spawn, tmp_path: Path) -> None:
    contexts = tmp_path / "contexts"
    write_spec(contexts)
    proc = spawn("run", "no.such.probe", "--contexts", str(contexts), env=clean_env())

    code = proc.finish()

    assert code != 0
    assert "no.such.probe" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not proc.stdout.strip()


# demo ------------------------------------------------------------------------------------------


def test_demo_prints_its_urls_serves_the_shipped_context_and_stops(spawn: Spawn) -> None:
    port = free_port()
    proc = spawn("demo", "--port", str(port), env=clean_env(), cwd=REPO)

    raw, took_s = wait_for(proc, port, "PUT", f"/{DEMO_SERVICE_ID}", timeout_s=30)
    status = assert_document(raw, DEMO_SERVICE_ID)
    assert took_s < 30
    stdout = proc.stdout
    base = f"http://{LOCALHOST}:{port}"
    assert base in stdout
    assert f"{base}/{DEMO_SERVICE_ID}" in stdout
    # One line per member of the simulated set the demo announced.
    members = set(re.findall(rf"{re.escape(LOCALHOST)}:\d+", stdout)) - {f"{LOCALHOST}:{port}"}
    assert len(members) == 3, stdout
    body = status["messages"][0]["actionBody"]
    for member in members:
        assert member in body, body
    index_status, _, _ = request(port, "GET", "/")
    assert index_status == 200

    code, stop_s = proc.stop()

    assert code == 0, proc.stderr
    assert stop_s < STOP_LIMIT_S
    assert "Traceback" not in proc.stderr
