"""compact(): equal parts of specs are shared, and nothing a spec says changes."""

from __future__ import annotations

from typing import Any

from schemas.context_spec import MongoReplicationLagSpec, compact


def spec(index: int, **fields: Any) -> MongoReplicationLagSpec:
    data = {
        "service_id": f"svc.{index}",
        "kind": "mongo_replication_lag",
        "connection": "clusterKeeper",
        **fields,
    }
    return MongoReplicationLagSpec.model_validate(data)


def test_equal_parts_are_shared_and_values_kept() -> None:
    plain = [compact(spec(i)) for i in range(3)]
    assert plain[0] == spec(0)
    assert plain[1].thresholds is plain[0].thresholds, "equal nested models are one object"
    assert plain[1].__pydantic_fields_set__ is plain[0].__pydantic_fields_set__
    assert plain[1].connection is plain[0].connection

    custom = compact(spec(9, thresholds={"yellow": 100, "red": 200}, confirm=3))
    assert custom == spec(9, thresholds={"yellow": 100, "red": 200}, confirm=3)
    assert custom.thresholds is not plain[0].thresholds
    assert (custom.thresholds.yellow, custom.thresholds.red, custom.confirm) == (100, 200, 3)
    assert custom.__pydantic_fields_set__ == {
        "service_id",
        "kind",
        "connection",
        "thresholds",
        "confirm",
    }
    assert custom.model_dump(exclude_unset=True)["thresholds"] == {"yellow": 100, "red": 200}
