"""The toy `events` feature log's contract, shared by the source and sampling tests."""

from __future__ import annotations

from typing import Any

from driftguard.contract import ModelContract


def events_contract(
    url: str, name: str, features: list[dict[str, Any]], *, source: dict[str, Any] | None = None, **sections: Any
) -> ModelContract:
    """A binary classifier over table `events` (ts, event_id, score). `source` entries override
    or, with None, remove the defaults; `sections` are further top-level contract fields."""
    src: dict[str, Any] = {
        "url": url,
        "table": "events",
        "timestamp_column": "ts",
        "id_column": "event_id",
        "prediction_column": "score",
    }
    for key, value in (source or {}).items():
        if value is None:
            src.pop(key, None)
        else:
            src[key] = value
    return ModelContract.model_validate(
        {
            "name": name,
            "task": "binary_classification",
            "owners": ["a@example.com"],
            "start_date": "2024-03-01",
            "source": src,
            "features": features,
            **sections,
        }
    )
