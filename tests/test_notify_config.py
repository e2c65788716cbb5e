"""The notifiers file: validated like the spec files (every problem as path:line: field:
message), checked by `zeroprobe check --notifiers`, refused by `serve`, reloaded with the
specs; its URLs are secrets everywhere."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import yaml

from tests.conftest import TESTDATA, TESTS
from zeroprobe.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, main
from zeroprobe.config.loader import load_contexts, load_file
from zeroprobe.config.notifiers import load_notifiers
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine
from zeroprobe.engine.reload import NOTIFIERS_TRIGGER, Reloader, ReloadOutcome, reload_triggers
from zeroprobe.notify.notifier import Notifier

NOTIFIERS = TESTDATA / "notifiers"
HOOK = "https://hooks.example/services/T0/B0/hooksecret123456"

INVALID = {
    "invalid-url-in-file.yaml": "4: sinks.0.url: a URL is a secret: name the environment "
    "variable that holds it (url_env) or a file (url_file), never the URL itself",
    "invalid-unknown-key.yaml": "3: alertmanager.resend: unknown field "
    "(allowed: resend_interval, timeout, urls)",
    "invalid-type.yaml": "3: sinks.0.type: Input should be 'webhook', 'slack', 'discord' or "
    "'apprise' (got 'pagerduty')",
    "invalid-min-status.yaml": "5: sinks.0.min_status: Input should be 'YELLOW' or 'RED' "
    "(got 'GREEN')",
    "invalid-two-sources.yaml": "2: sinks.0: set exactly one of url_env and url_file",
    "invalid-duplicate-names.yaml": "1: sinks: two sinks are named 'oncall'",
    "invalid-alertmanager-credentials.yaml": "2: alertmanager.urls: no user:password@ in the "
    "file: credentials are secrets",
    "invalid-yaml-syntax.yaml": "4: yaml: YAML syntax error: while parsing a flow sequence "
    "started at line 3, expected ',' or ']', but got '<stream end>'",
    "invalid-duration.yaml": "1: coalesce: expected a duration like '30s', '2m', '1m30s' or "
    "'500ms', got 'soon'",
}


@pytest.mark.parametrize(("name", "expected"), INVALID.items(), ids=list(INVALID))
def test_each_mistake_is_located(name: str, expected: str) -> None:
    report = load_notifiers(NOTIFIERS / name, {"ONCALL_HOOK_URL": HOOK})
    assert report.notifiers is None
    assert [str(p) for p in report.problems] == [f"{NOTIFIERS / name}:{expected}"]


def test_the_documented_example_loads_with_urls_from_env_and_file() -> None:
    env = {
        "ONCALL_HOOK_URL": HOOK,
        "TEAM_SLACK_URL": HOOK + "2",
        "OPS_APPRISE_URL": "tgram://123456789:AAbbccddeeff/12345",
    }
    report = load_notifiers(NOTIFIERS / "valid.yaml", env)
    assert report.problems == []
    assert report.notifiers is not None
    config = report.notifiers.config
    assert config.alertmanager is not None
    assert config.alertmanager.urls == ["http://alertmanager-0:9093", "http://alertmanager-1:9093"]
    assert config.alertmanager.resend_interval == 60
    by_name = {s.config.name: s for s in report.notifiers.sinks}
    assert by_name["oncall"].config.match == ["payments.*"]
    assert by_name["team-slack"].config.min_status == "RED"
    assert by_name["team-discord"].url == "https://discord.example/api/webhooks/1/TOKENFROMFILE"
    assert set(report.notifiers.secrets) == {
        HOOK,
        HOOK + "2",
        "tgram://123456789:AAbbccddeeff/12345",
        "https://discord.example/api/webhooks/1/TOKENFROMFILE",
    }


def test_a_url_variable_that_is_not_a_url_is_an_error_that_does_not_quote_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "n.yaml"
    path.write_text("sinks:\n  - {name: a, type: slack, url_env: A_URL}\n", encoding="utf-8")
    (problem,) = load_notifiers(path, {"A_URL": "not-a-url-secret"}).problems
    assert str(problem) == (
        f"{path}:2: sinks.0.url_env: the URL in A_URL is not an http(s) URL "
        "(a slack sink posts to one)"
    )


def test_check_prints_the_sinks_but_never_a_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {
        "ONCALL_HOOK_URL": HOOK,
        "TEAM_SLACK_URL": HOOK + "2",
        "OPS_APPRISE_URL": "tgram://123456789:AAbbccddeeff/12345",
    }
    code = main(
        [
            "check",
            str(TESTDATA / "contexts" / "valid"),
            "--notifiers",
            str(NOTIFIERS / "valid.yaml"),
        ],
        env,
    )
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert (
        "ok: 2 Alertmanager(s); sinks: oncall (webhook), team-slack (slack), "
        "team-discord (discord), ops-telegram (apprise)"
    ) in out
    for secret in (
        HOOK,
        "hooksecret123456",
        "TOKENFROMFILE",
        "tgram://123456789:AAbbccddeeff/12345",
    ):
        assert secret not in out + err


def test_check_fails_on_a_bad_notifiers_file_named_by_the_environment(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = NOTIFIERS / "invalid-type.yaml"
    env = {"ZEROPROBE_NOTIFIERS": str(bad), "ONCALL_HOOK_URL": HOOK}
    code = main(["check", str(TESTDATA / "contexts" / "valid")], env)
    _, err = capsys.readouterr()
    assert code == EXIT_INVALID
    assert f"{bad}:3: sinks.0.type:" in err
    assert "1 error(s) in 1 file(s)" in err


def test_serve_refuses_to_start_on_a_bad_notifiers_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = NOTIFIERS / "invalid-url-in-file.yaml"
    code = main(
        ["serve", "--contexts", str(TESTDATA / "contexts" / "valid"), "--notifiers", str(bad)],
        {"ZEROPROBE_CONNECTION_ORDERS": "mongodb://127.0.0.1:1"},
    )
    _, err = capsys.readouterr()
    assert code == EXIT_USAGE
    assert f"{bad}:4: sinks.0.url:" in err
    assert "https://hooks.example/secret" not in err


async def test_a_reload_applies_a_changed_notifiers_file_and_rejects_a_broken_one(
    tmp_path: Path,
) -> None:
    contexts = tmp_path / "contexts"
    contexts.mkdir()
    (contexts / "a.yaml").write_text(
        "service_id: a.db\nkind: mongo_replication_lag\nconnection: a\n", encoding="utf-8"
    )
    notifiers = tmp_path / "notifiers.yaml"
    notifiers.write_text("sinks:\n  - {name: one, type: webhook, url_env: ONE_URL}\n", "utf-8")
    env = {"ONE_URL": HOOK, "TWO_URL": HOOK + "two"}
    settings = Settings(
        contexts=str(contexts), notifiers=str(notifiers), data_dir=str(tmp_path / "data")
    )
    report = load_contexts(contexts, env)
    engine = Engine(report.specs, settings, env, notifiers=load_notifiers(notifiers, env).notifiers)
    notifier = Notifier(engine)
    await notifier.start()
    try:
        reloader = Reloader(engine)
        notifiers.write_text(
            "sinks:\n  - {name: one, type: webhook, url_env: ONE_URL}\n"
            "  - {name: two, type: slack, url_env: TWO_URL}\n",
            "utf-8",
        )
        outcome = await reloader.reload("test")
        assert outcome.ok
        assert [row.name for row in notifier.health()] == ["one", "two"]
        assert engine.redact(f"posted to {HOOK}two") == "posted to ***"
        notifiers.write_text("sinks:\n  - {name: one, type: teams, url_env: ONE_URL}\n", "utf-8")
        outcome = await reloader.reload("test")
        assert not outcome.ok
        assert str(outcome.errors[0]).startswith(f"{notifiers}:2: sinks.0.type:")
        assert [row.name for row in notifier.health()] == ["one", "two"]
    finally:
        await engine.stop()
        await notifier.stop()


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ("{severity: page}", "labels: label 'severity' is set by zeroprobe itself"),
        (
            "{team-name: a}",
            "labels: 'team-name' is not a label name: letters, digits and '_', "
            "not starting with a digit or '__'",
        ),
        ("{team: 7}", "labels.team: Input should be a valid string (got 7)"),
    ],
    ids=["reserved", "bad-name", "not-a-string"],
)
def test_a_specs_alert_labels_are_checked(tmp_path: Path, labels: str, expected: str) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(
        f"service_id: a.db\nkind: mongo_replication_lag\nconnection: a\nlabels: {labels}\n",
        encoding="utf-8",
    )
    spec, problems = load_file(path, {"ZEROPROBE_CONNECTION_A": "mongodb://h"})
    assert spec is None
    assert [str(p) for p in problems] == [f"{path}:4: {expected}"]


async def test_a_change_of_labels_only_does_not_restart_the_probe(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(
        "service_id: a.db\nkind: mongo_replication_lag\nconnection: a\nlabels: {team: pay}\n",
        encoding="utf-8",
    )
    before, _ = load_file(path, {})
    path.write_text(path.read_text("utf-8").replace("pay", "billing"), encoding="utf-8")
    after, _ = load_file(path, {})
    assert before is not None and after is not None
    engine = Engine([before], Settings(), {})
    summary = await engine.apply([after])
    assert summary.unchanged == ("a.db",)
    assert engine.contexts["a.db"].spec.labels == {"team": "billing"}
    await engine.stop()


def test_the_shipped_kubernetes_notifiers_file_is_valid(tmp_path: Path) -> None:
    configmap = yaml.safe_load(
        (TESTS.parent / "deploy" / "kubernetes" / "notifiers.yaml").read_text(encoding="utf-8")
    )
    path = tmp_path / "notifiers.yaml"
    path.write_text(configmap["data"]["notifiers.yaml"], encoding="utf-8")
    report = load_notifiers(path, {})
    assert report.problems == []
    assert report.notifiers is not None


def test_an_apprise_url_apprise_cannot_use_is_named_at_load_without_quoting_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "n.yaml"
    path.write_text(
        "sinks:\n  - {name: chat, type: apprise, url_env: CHAT_URL}\n", encoding="utf-8"
    )
    for url, scheme in (
        ("tgram://tokensecret/1", "tgram"),
        ("nosuchservice://x/y", "nosuchservice"),
    ):
        (problem,) = load_notifiers(path, {"CHAT_URL": url}).problems
        assert str(problem) == (
            f"{path}:2: sinks.0.url_env: the URL in CHAT_URL is not a URL Apprise can use "
            f"(a {scheme}:// URL it cannot parse)"
        )
    assert "tokensecret" not in caplog.text
    report = load_notifiers(path, {"CHAT_URL": "ntfy://zeroprobe-alerts"})
    assert report.problems == [] and report.notifiers is not None


async def test_a_change_of_the_notifiers_file_alone_is_applied_without_a_signal(
    tmp_path: Path,
) -> None:
    """In Kubernetes the notifiers file is a ConfigMap of its own, outside the contexts folder:
    its `..data` swap is noticed like an edit, a touch reloads nothing, a broken file is
    rejected and the sinks stay."""
    contexts = tmp_path / "contexts"
    contexts.mkdir()
    (contexts / "a.yaml").write_text(
        "service_id: a.db\nkind: mongo_replication_lag\nconnection: a\n", encoding="utf-8"
    )
    mount = tmp_path / "notifiers"
    (mount / "..2026_12_01_a").mkdir(parents=True)
    (mount / "..2026_12_01_a" / "notifiers.yaml").write_text(
        "sinks:\n  - {name: one, type: webhook, url_env: ONE_URL}\n", "utf-8"
    )
    (mount / "..data").symlink_to("..2026_12_01_a")
    notifiers = mount / "notifiers.yaml"
    notifiers.symlink_to("..data/notifiers.yaml")
    env = {"ONE_URL": HOOK, "TWO_URL": HOOK + "two"}
    settings = Settings(
        contexts=str(contexts), notifiers=str(notifiers), data_dir=str(tmp_path / "data")
    )
    engine = Engine(
        load_contexts(contexts, env).specs,
        settings,
        env,
        notifiers=load_notifiers(notifiers, env).notifiers,
    )
    notifier = Notifier(engine)
    await notifier.start()
    reloader = Reloader(engine)
    outcomes: list[ReloadOutcome | None] = []
    reload_if_changed = reloader.reload_if_changed

    async def recorded(trigger: str) -> ReloadOutcome | None:
        outcome = await reload_if_changed(trigger)
        outcomes.append(outcome)
        return outcome

    reloader.reload_if_changed = recorded  # type: ignore[method-assign]

    async def settled(count: int) -> None:
        for _ in range(100):
            if len(outcomes) >= count:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{count} reload(s) expected, {len(outcomes)} happened")

    try:
        async with reload_triggers(reloader, 0.1):
            # A ConfigMap update: a new hidden folder, then `..data` re-pointed at it.
            (mount / "..2026_12_01_b").mkdir()
            (mount / "..2026_12_01_b" / "notifiers.yaml").write_text(
                "sinks:\n  - {name: one, type: webhook, url_env: ONE_URL}\n"
                "  - {name: two, type: slack, url_env: TWO_URL}\n",
                "utf-8",
            )
            (mount / "..data_tmp").symlink_to("..2026_12_01_b")
            (mount / "..data_tmp").rename(mount / "..data")
            await settled(1)
            assert outcomes[0] is not None and outcomes[0].ok
            assert outcomes[0].trigger == NOTIFIERS_TRIGGER
            assert [row.name for row in notifier.health()] == ["one", "two"]
            os.utime(notifiers)  # the same content: looked at, not reloaded
            await settled(2)
            assert outcomes[1] is None
            (mount / "..2026_12_01_b" / "notifiers.yaml").write_text(
                "sinks:\n  - {name: one, type: teams, url_env: ONE_URL}\n", "utf-8"
            )
            await settled(3)
            assert outcomes[2] is not None and not outcomes[2].ok
            assert [row.name for row in notifier.health()] == ["one", "two"]
    finally:
        await engine.stop()
        await notifier.stop()
