"""The runner scrubs a run's lines as one text first: the same lines as scrubbing each one."""

from __future__ import annotations

import pytest

from schemas.grading import Grade, Line
from zeroprobe.config.settings import Settings
from zeroprobe.engine.core import Engine

SECRET_URI = "mongodb://monitor:s3cr3t-pass@db1:27017/?replicaSet=rs0"
ENVIRON = {"ZEROPROBE_CONNECTION_RS": SECRET_URI}


@pytest.mark.parametrize(
    "texts",
    [
        pytest.param(["- Primary db1:27017 replication lag 0ms", "- oplog window 2h"], id="clean"),
        pytest.param(["- lag 0ms", "- unreachable: s3cr3t-pass refused"], id="known-secret"),
        pytest.param(["- said mongodb://u:pw@h:1/x", "- fine"], id="uri-userinfo"),
        pytest.param(["- header Authorization: Basic", "dXNlcjpwYXNz"], id="header-split"),
        pytest.param(["- token Bearer", "abc123defg456"], id="bearer-split"),
        pytest.param(["- ghp_" + "a" * 30, "- next"], id="token-shape"),
        pytest.param(["- run at https://ci/x?token=abc", "- x"], id="token-param"),
        pytest.param([], id="no-line"),
    ],
)
async def test_lines_are_scrubbed_as_one_by_one(texts: list[str]) -> None:
    engine = Engine([], Settings(), ENVIRON)
    try:
        lines = [Line(text, Grade.GREEN) for text in texts]
        one_by_one = [Line(engine.redact(line.text), line.grade) for line in lines]
        assert engine.runner._redacted(lines) == one_by_one
        assert SECRET_URI not in "\n".join(line.text for line in engine.runner._redacted(lines))
    finally:
        await engine.stop()


async def test_clean_lines_are_kept_as_they_are() -> None:
    engine = Engine([], Settings(), ENVIRON)
    try:
        lines = [Line("- Primary db1:27017 replication lag 0ms", Grade.GREEN)]
        assert engine.runner._redacted(lines) is lines
    finally:
        await engine.stop()
