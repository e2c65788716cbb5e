"""What ships: the Dockerfile (hadolint), the Kubernetes manifests (kubernetes-validate, offline)
and, since no Docker engine runs here, what the image would run: the wheel built from the
Dockerfile's build-stage sources, installed into a fresh venv without dev dependencies,
serving the example contexts against a simulated replica set.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import kustomize
from tests.configmap import CONFIGMAP, context_files, render
from tests.test_cli_process import (
    DEMO_SERVICE_ID,
    LOCALHOST,
    Proc,
    assert_document,
    clean_env,
    free_port,
    wait_for,
)
from zeroprobe.config.loader import load_contexts
from zeroprobe.simulators.mongo import SimulatedReplicaSet

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DEPLOY = REPO / "deploy" / "kubernetes"
#: The StatefulSet overlay (shards and replicas); beside DEPLOY, as kustomize refuses an overlay
#: inside the folder of its base.
OVERLAY = REPO / "deploy" / "kubernetes-statefulset"
# Tools of the environment running the tests (the project's .venv, dev extras).
BIN = Path(sys.executable).parent
#: The newest Kubernetes release whose schemas the installed kubernetes-validate ships.
KUBERNETES_VERSION = "1.37.0"
SECRET_TEMPLATE = DEPLOY / "secret.template.yaml"
DEV_ONLY_MODULES = ("pytest", "mypy", "ruff", "pytest_aiohttp", "kubernetes_validate")


# The Dockerfile, read as instructions -------------------------------------------------------


@dataclass
class Stage:
    """One FROM ... stage: its base image, name and instructions as (keyword, arguments)."""

    base: str
    name: str = ""
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]

    def one(self, keyword: str) -> str:
        (args,) = self.all(keyword)
        return args


def dockerfile_stages(text: str) -> list[Stage]:
    """The stages of a Dockerfile (continuation lines joined, comments dropped)."""
    stages: list[Stage] = []
    logical = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        logical += raw.rstrip()
        if logical.endswith("\\"):
            logical = logical[:-1] + " "
            continue
        keyword, _, args = logical.strip().partition(" ")
        logical = ""
        if keyword.upper() == "FROM":
            base, *alias = args.split()
            stages.append(Stage(base=base, name=alias[-1] if alias else ""))
        else:
            stages[-1].instructions.append((keyword.upper(), " ".join(args.split())))
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
    return env


def copy_sources(stage: Stage) -> list[str]:
    """The context paths a stage copies in (not those copied from another stage)."""
    sources: list[str] = []
    for args in stage.all("COPY"):
        if not args.startswith("--from"):
            sources += args.split()[:-1]
    return sources


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))


def healthcheck_argv(stage: Stage) -> list[str]:
    """The exec-form command of the HEALTHCHECK."""
    args = stage.one("HEALTHCHECK")
    assert " CMD [" in args, "exec form: no shell in the command"
    argv: list[str] = json.loads(args.split(" CMD ", 1)[1])
    return argv


def run(
    *argv: str | Path, cwd: Path = REPO, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command; with `check`, fail the test unless it exits 0."""
    result = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"
    return result


def test_dockerfile_passes_hadolint_with_no_warning(tmp_path: Path) -> None:
    # A config file or HADOLINT_* variable of this machine must not relax the rules.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    hadolint = (BIN / "hadolint", "--no-color", "--failure-threshold", "style", DOCKERFILE)
    result = run(*hadolint, cwd=tmp_path, env=env, check=False)

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_dockerfile_builds_a_wheel_then_runs_it_unprivileged(stages: list[Stage]) -> None:
    build, runtime = stages
    for stage in stages:
        assert stage.base.startswith("python:3.1") and "-slim" in stage.base, stage.base
    assert "pip wheel" in build.one("RUN") and "--no-deps" in build.one("RUN")
    assert runtime.all("COPY")[0].startswith(f"--from={build.name} ")
    assert any("pip install --no-cache-dir /wheels/" in run for run in runtime.all("RUN"))
    user = runtime.all("USER")[-1]
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) > 0, "numeric, not root"
    env = env_of(runtime)
    assert env["ZEROPROBE_CONTEXTS"] == "/etc/zeroprobe/contexts"
    assert env["ZEROPROBE_HOST"] == "0.0.0.0"
    # The outbox's folder exists and belongs to the user the image runs as.
    data_dir = env["ZEROPROBE_DATA_DIR"]
    assert any(
        f"install -d -o {user.split(':')[0]}" in run and run.endswith(data_dir)
        for run in runtime.all("RUN")
    )
    assert runtime.one("EXPOSE") == env["ZEROPROBE_PORT"] == "8080"
    assert "contexts/ /etc/zeroprobe/contexts/" in runtime.all("COPY")
    assert json.loads(runtime.one("ENTRYPOINT")) == ["zeroprobe"]
    assert json.loads(runtime.one("CMD")) == ["serve"]
    health = healthcheck_argv(runtime)
    assert health[0] == "python", "the slim image has no curl"
    assert "/livez" in " ".join(health)


def test_dockerignore_lets_in_every_path_the_dockerfile_copies(stages: list[Stage]) -> None:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert lines[lines.index("*") - 1].startswith("#")
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}

    copied = {source.rstrip("/") for stage in stages for source in copy_sources(stage)}

    assert copied <= allowed, copied - allowed
    assert all((REPO / path).exists() for path in copied)


# The Kubernetes manifests -------------------------------------------------------------------


def manifest(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))
    return loaded


def test_manifests_are_valid_for_a_current_kubernetes_in_strict_mode() -> None:
    files = sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
    assert {p.name for p in files} >= {
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
        "secret.template.yaml",
    }

    validate = (BIN / "kubernetes-validate", "--strict", "--kubernetes-version", KUBERNETES_VERSION)
    result = run(*validate, *files)

    passed = [line for line in result.stdout.splitlines() if " passed for resource " in line]
    assert len(passed) == len(files), result.stdout
    assert "WARN" not in result.stdout + result.stderr


def test_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    kustomization = manifest("kustomization.yaml")
    resources = kustomization["resources"]
    on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}

    assert sorted(resources) == sorted(on_disk - {SECRET_TEMPLATE.name})
    assert "configMapGenerator" not in kustomization, "a generated name would restart the pods"


def test_configmap_holds_exactly_the_example_contexts() -> None:
    data = manifest("configmap.yaml")["data"]

    assert data == context_files(), "run `make configmap`"
    assert CONFIGMAP.read_text(encoding="utf-8") == render(), "run `make configmap`"


def test_secret_template_sets_every_variable_the_example_contexts_name() -> None:
    secret = manifest(SECRET_TEMPLATE.name)
    assert secret["metadata"]["name"] == "zeroprobe-connections"

    report = load_contexts(REPO / "contexts", secret["stringData"])

    assert report.ok, report.problems
    assert not report.warnings, [str(w) for w in report.warnings]


def test_deployment_probes_mounts_and_security(stages: list[Stage]) -> None:
    deployment = manifest("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    runtime_env = env_of(stages[-1])

    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    text = (DEPLOY / "deployment.yaml").read_text(encoding="utf-8")
    assert "not /liveness" in text, "the comment saying why"
    assert pod["enableServiceLinks"] is False, "would set ZEROPROBE_PORT=tcp://..."
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert str(pod["securityContext"]["runAsUser"]) == stages[-1].all("USER")[-1].split(":")[0]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "contexts"]
    assert mount["mountPath"] == runtime_env["ZEROPROBE_CONTEXTS"]
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    (volume,) = [v for v in pod["volumes"] if v["name"] == "contexts"]
    assert volume["configMap"]["name"] == manifest("configmap.yaml")["metadata"]["name"]
    assert container["envFrom"] == [{"secretRef": {"name": "zeroprobe-connections"}}]
    (port,) = container["ports"]
    assert str(port["containerPort"]) == runtime_env["ZEROPROBE_PORT"]
    service_port = manifest("service.yaml")["spec"]["ports"][0]
    assert service_port["targetPort"] == port["name"]


# The StatefulSet overlay (docs/scaling.md) ---------------------------------------------------


def by_kind_and_name(resources: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    found = {(r["kind"], r["metadata"]["name"]): r for r in resources}
    assert len(found) == len(resources), "two resources of one kind and name"
    return found


@pytest.fixture(scope="module")
def overlay() -> dict[tuple[str, str], dict[str, Any]]:
    return by_kind_and_name(kustomize.build(OVERLAY))


def test_statefulset_overlay_builds_valid_manifests_in_strict_mode(
    tmp_path: Path, overlay: dict[tuple[str, str], dict[str, Any]]
) -> None:
    built = tmp_path / "statefulset.yaml"
    built.write_text(yaml.safe_dump_all(list(overlay.values())), encoding="utf-8")

    validate = (BIN / "kubernetes-validate", "--strict", "--kubernetes-version", KUBERNETES_VERSION)
    result = run(*validate, built)

    passed = [line for line in result.stdout.splitlines() if " passed for resource " in line]
    assert len(passed) == len(overlay), result.stdout
    assert "WARN" not in result.stdout + result.stderr
    assert sorted(overlay) == [
        ("ConfigMap", "zeroprobe-contexts"),
        ("ConfigMap", "zeroprobe-notifiers"),
        ("PodDisruptionBudget", "zeroprobe"),
        ("Service", "zeroprobe"),
        ("Service", "zeroprobe-peers"),
        ("StatefulSet", "zeroprobe"),
    ], "no Deployment and no shared outbox volume beside the StatefulSet"
    for resource in overlay.values():
        assert resource["metadata"]["labels"]["app.kubernetes.io/part-of"] == "zeroprobe"


def test_statefulset_overlay_uses_every_file_of_its_folder() -> None:
    kustomization = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text(encoding="utf-8"))
    used = {r for r in kustomization["resources"] if not r.startswith("..")}
    used |= {p["path"] for p in kustomization["patches"]}

    assert used == {p.name for p in OVERLAY.glob("*.yaml")} - {"kustomization.yaml"}
    assert "configMapGenerator" not in kustomization, "a generated name would restart the pods"


def test_the_python_build_of_the_overlay_is_what_kustomize_builds(
    overlay: dict[tuple[str, str], dict[str, Any]],
) -> None:
    if shutil.which("kustomize"):
        command: tuple[str, ...] = ("kustomize", "build")
    elif shutil.which("kubectl"):
        command = ("kubectl", "kustomize")
    else:
        pytest.skip("neither kustomize nor kubectl is installed (make test installs neither)")

    result = run(*command, OVERLAY)

    assert by_kind_and_name(list(yaml.safe_load_all(result.stdout))) == overlay


def test_statefulset_runs_the_deployments_pod_as_shards_and_replicas(
    overlay: dict[tuple[str, str], dict[str, Any]],
) -> None:
    statefulset = overlay[("StatefulSet", "zeroprobe")]
    deployment = by_kind_and_name(kustomize.build(DEPLOY))[("Deployment", "zeroprobe")]
    pod, base_pod = statefulset["spec"]["template"]["spec"], deployment["spec"]["template"]["spec"]
    (container,), (base_container,) = pod["containers"], base_pod["containers"]
    env = {e["name"]: e for e in container["env"]}

    # The Deployment's pod, unchanged but for the topology and the volume per pod.
    assert statefulset["spec"]["template"]["metadata"] == deployment["spec"]["template"]["metadata"]
    for key in base_pod.keys() - {"containers", "volumes"}:
        assert pod[key] == base_pod[key], key
    for key in base_container.keys() - {"env"}:
        assert container[key] == base_container[key], key
    assert [e for e in base_container["env"] if env.get(e["name"]) != e] == []
    assert pod["volumes"] == [v for v in base_pod["volumes"] if v["name"] != "data"]
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    assert mount["mountPath"] == env["ZEROPROBE_DATA_DIR"]["value"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]

    # S × R pods, each knowing its index and how to reach its peers.
    shards, replicas = (
        int(env["ZEROPROBE_SHARDS"]["value"]),
        int(env["ZEROPROBE_REPLICAS"]["value"]),
    )
    assert statefulset["spec"]["replicas"] == shards * replicas
    text = (OVERLAY / "statefulset.yaml").read_text(encoding="utf-8")
    assert "Must equal ZEROPROBE_SHARDS × ZEROPROBE_REPLICAS" in text, "the comment"
    assert env["ZEROPROBE_POD_INDEX"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
    }
    peers = overlay[("Service", statefulset["spec"]["serviceName"])]
    (port,) = container["ports"]
    host = f"{statefulset['metadata']['name']}-{{index}}.{peers['metadata']['name']}."
    assert env["ZEROPROBE_PEER_URL"]["value"].startswith(f"http://{host}")
    assert env["ZEROPROBE_PEER_URL"]["value"].endswith(f".svc:{port['containerPort']}")
    namespace = env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert namespace == "metadata.namespace", "$(POD_NAMESPACE) of the peer URL"
    assert "ZEROPROBE_PEERS" not in env, "the template or the list, not both"

    # Peers find each other before they are ready; clients reach ready pods only.
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert peers["spec"]["clusterIP"] == "None"
    assert peers["spec"]["publishNotReadyAddresses"] is True
    assert peers["spec"]["selector"] == pod_labels
    assert peers["spec"]["ports"][0]["targetPort"] == port["name"]
    client = overlay[("Service", "zeroprobe")]
    assert client["spec"]["selector"] == pod_labels, "the monitoring system's one URL"
    assert "publishNotReadyAddresses" not in client["spec"]

    # One pod at a time out, replicas spread over nodes.
    budget = overlay[("PodDisruptionBudget", "zeroprobe")]["spec"]
    assert budget["maxUnavailable"] == 1
    assert budget["selector"]["matchLabels"] == pod_labels
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == pod_labels
    assert statefulset["spec"]["updateStrategy"] == {"type": "RollingUpdate"}


# What the image would run -------------------------------------------------------------------


def package_files(project: Path) -> set[str]:
    """Every file of the packages a pyproject.toml ships (py.typed, schemas, static files, ...),
    as paths inside its wheel."""
    setuptools = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]
    packages = setuptools["packages"]
    if isinstance(packages, dict):  # packages.find: include patterns such as "zeroprobe*"
        packages = [pattern.rstrip("*") for pattern in packages["find"]["include"]]
    assert packages
    files: set[str] = set()
    for package in packages:
        root = project / package.replace(".", "/")
        assert root.is_dir(), root
        for path in root.rglob("*"):
            relative = path.relative_to(project)
            hidden = any(part.startswith(".") for part in relative.parts)
            if path.is_file() and "__pycache__" not in relative.parts and not hidden:
                files.add(relative.as_posix())
    return files


# pip installs the runtime dependencies from its cache: well over the default 60 s when the
# machine is busy.
@pytest.mark.timeout(300)
def test_the_wheel_installed_without_dev_dependencies_serves_the_example_contexts(
    tmp_path: Path, stages: list[Stage], replica_set: SimulatedReplicaSet
) -> None:
    build, runtime = stages
    # Nothing of the source tree may be importable: not through PYTHONPATH, not from the cwd.
    env = clean_env()
    env.pop("PYTHONPATH", None)
    # Build from what the Dockerfile's build stage copies, nothing else.
    source = tmp_path / "src"
    source.mkdir()
    for path in copy_sources(build):
        origin = REPO / path
        if origin.is_dir():
            shutil.copytree(origin, source / path, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, source / path)
    dist = tmp_path / "dist"
    pip = (sys.executable, "-m", "pip")
    # The projects the build stage's `pip wheel ... --wheel-dir /wheels <project>...` names.
    command = build.one("RUN").split()
    projects = command[command.index("/wheels") + 1 :]
    assert projects[0] == "." and len(projects) == 2, projects
    run(*pip, "wheel", "--quiet", "--no-deps", "-w", dist, *projects, cwd=source, env=env)
    wheels = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["zeroprobe", "zeroprobe_http"]
    for project, wheel in zip(projects, wheels, strict=True):
        with zipfile.ZipFile(wheel) as archive:
            shipped = set(archive.namelist())
        left_out = sorted(package_files(REPO / project) - shipped)
        assert not left_out, f"{wheel.name} leaves out (pyproject package-data?): {left_out}"

    venv = tmp_path / "venv"
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=env)
    # The wheel and its own dependencies only; pip's cache keeps this quick.
    install: tuple[str | Path, ...] = ("install", "--quiet", "--no-compile", *wheels)
    run(*pip, "--python", python, *install, cwd=tmp_path, env=env)
    probe = run(
        python,
        "-c",
        "import importlib.util, json, zeroprobe; print(json.dumps({'file': zeroprobe.__file__, "
        f"'dev': [m for m in {DEV_ONLY_MODULES!r} if importlib.util.find_spec(m)]}}))",
        cwd=tmp_path,
        env=env,
    )
    found = json.loads(probe.stdout)
    assert found["file"].startswith(str(venv)), found
    assert found["dev"] == [], "dev dependencies in the runtime environment"

    contexts = tmp_path / "etc" / "zeroprobe" / "contexts"
    shutil.copytree(REPO / "contexts", contexts)
    port = free_port()
    env.update({k: v for k, v in env_of(runtime).items() if not k.startswith("ZEROPROBE_")})
    env.update(
        ZEROPROBE_CONTEXTS=str(contexts),
        ZEROPROBE_HOST=LOCALHOST,  # the image listens on 0.0.0.0; tests stay on loopback
        ZEROPROBE_PORT=str(port),
        ZEROPROBE_CONNECTION_CLUSTERKEEPER=replica_set.uri,
    )
    command = json.loads(runtime.one("ENTRYPOINT")) + json.loads(runtime.one("CMD"))
    out, err = tmp_path / "serve.out", tmp_path / "serve.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        popen = subprocess.Popen(
            [str(venv / "bin" / command[0]), *command[1:]],
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=tmp_path,
        )
    proc = Proc(popen, out, err)
    health_check: list[str | Path] = [python, *healthcheck_argv(runtime)[1:]]
    try:
        raw, _ = wait_for(proc, port, "PUT", f"/{DEMO_SERVICE_ID}", timeout_s=30)
        assert assert_document(raw, DEMO_SERVICE_ID)["status"] == "GREEN"
        run(*health_check, cwd=tmp_path, env=env)

        code, _ = proc.stop(signal.SIGTERM)
    finally:
        if popen.poll() is None:
            popen.kill()
        popen.wait(timeout=10)

    assert code == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    stopped = run(*health_check, cwd=tmp_path, env=env, check=False)
    assert stopped.returncode != 0, "the health check fails when nothing answers"
