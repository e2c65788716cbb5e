"""The Prometheus alerting rules shipped for zeroprobe itself (deploy/prometheus/): valid for
`promtool check rules`, passing their unit tests (`promtool test rules`), and naming only
metrics zeroprobe exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from schemas.grading import Grade
from tests.notify_support import harness

RULES_DIR = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
RULES = RULES_DIR / "zeroprobe-rules.yaml"
RULE_TESTS = RULES_DIR / "zeroprobe-rules.test.yaml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMTOOL, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    done = promtool("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_the_rules_name_only_metrics_zeroprobe_exports(tmp_path: Path) -> None:
    yaml = "sinks:\n  - {name: oncall, type: webhook, url_env: HOOK}\n"
    async with harness(tmp_path, yaml, {}) as h:
        await h.set("payments.api", Grade.RED)
        exposition = h.engine.metrics.render().decode()
    exported = set(re.findall(r"^(zeroprobe_\w+?)(?:\{| )", exposition, re.MULTILINE))
    named = set(re.findall(r"\b(zeroprobe_\w+)", RULES.read_text(encoding="utf-8")))
    assert named, "no metric named in the rules"
    assert named <= exported, named - exported
