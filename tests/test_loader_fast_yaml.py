"""The loader's one-pass YAML reading gives the data PyYAML's safe loader gives, and the same
problems."""

from __future__ import annotations

import pytest
import yaml

from zeroprobe.config.loader import parse_yaml

DOCUMENTS = {
    "plain": "service_id: a.b\nkind: mongo_replication_lag\ninterval: 60s\ntimeout: 5s\n",
    "scalars": "n: 3\nf: 1.5\nyes_: yes\nt: true\nnull_: ~\nday: 2024-01-02\nhex: 0x1f\n",
    "quoted": "a: '3'\nb: \"true\"\nc: !!str 4\nd: !!int '5'\n",
    "nested": "labels:\n  team: payments\n  tier: '1'\nthresholds: {yellow: 5000, red: 30000}\n",
    "lists": "a: [1, two, {three: 3}]\nb:\n  - x\n  - [y, z]\n",
    "anchors": "base: &b {yellow: 1, red: 2}\nthresholds: *b\nmerged:\n  <<: *b\n  red: 3\n",
    "duplicate": "kind: a\nkind: b\nmap: {x: 1}\nmap: {y: 2}\n",
    "int-keys": "1: one\n2.5: two\ntrue: three\n",
    "empty-value": "a:\nb: ''\n",
    "scalar-root": "just a string\n",
    "list-root": "- a\n- b\n",
    "empty": "# only a comment\n",
    "trailing-separator": "a: 1\n---\n",
    "binary": "blob: !!binary aGVsbG8=\n",
    "set": "s: !!set {a, b}\n",
}


@pytest.mark.parametrize("text", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_the_data_is_what_the_safe_loader_builds(text: str) -> None:
    # (A duplicate key is also a problem of its own, found on the nodes: not checked here.)
    data, _, _ = parse_yaml(text, "spec.yaml", 0)
    assert data == next(iter(yaml.safe_load_all(text)), None)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: !custom 1\n", id="unknown-tag"),
        pytest.param("a: [1, 2\n", id="unclosed-flow"),
        pytest.param("a: 1\n\tb: 2\n", id="tab"),
        pytest.param("{[1]: x}\n", id="unhashable-key"),
        pytest.param("a: *missing\n", id="undefined-alias"),
    ],
)
def test_a_broken_document_raises_what_the_safe_loader_raises(text: str) -> None:
    with pytest.raises(yaml.YAMLError) as expected:
        list(yaml.safe_load_all(text))
    with pytest.raises(yaml.YAMLError) as got:
        parse_yaml(text, "spec.yaml", 0)
    assert str(got.value) == str(expected.value)


def test_two_documents_are_one_problem_at_the_second() -> None:
    data, lines, problems = parse_yaml("a: 1\n---\nb: 2\n", "spec.yaml", 4)
    assert (data, lines) == (None, {})
    assert [(p.line, p.field, p.message) for p in problems] == [
        (7, "yaml", "more than one YAML document: one spec per file")
    ]
