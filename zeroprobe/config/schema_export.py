"""Write the JSON Schema files of the contracts: `python -m zeroprobe.config.schema_export [DIR]`.

The context-spec schema is the union of every installed kind's model, plugins included, so
it lives here (it needs the kind registry) and writes beside the `schemas` package.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

import schemas
from schemas.zero_problem import ZeroProblemDocument
from zeroprobe.config.kinds import KindRegistry, installed_kinds

SCHEMAS_DIR = Path(schemas.__file__).parent


def context_spec_schema(kinds: KindRegistry | None = None) -> dict[str, Any]:
    """JSON Schema of a context spec (the front matter of a .md file, or a whole .yaml)."""
    spec_types = tuple((installed_kinds() if kinds is None else kinds).spec_types())
    union: Any = spec_types[0] if len(spec_types) == 1 else Union[spec_types]  # noqa: UP007
    if len(spec_types) > 1:
        union = Annotated[union, Field(discriminator="kind")]
    schema = TypeAdapter(union).json_schema()
    schema["title"] = "zeroprobe context spec"
    return schema


def zero_problem_schema() -> dict[str, Any]:
    """JSON Schema of the Zero Problem document."""
    schema = ZeroProblemDocument.model_json_schema()
    schema["title"] = "Zero Problem document"
    return schema


def rendered_schemas() -> dict[str, str]:
    """File name -> exact file text of every exported schema."""
    return {
        "context_spec.schema.json": json.dumps(context_spec_schema(), indent=2) + "\n",
        "zero_problem.schema.json": json.dumps(zero_problem_schema(), indent=2) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else SCHEMAS_DIR
    for name, text in rendered_schemas().items():
        (target / name).write_text(text, encoding="utf-8")
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
