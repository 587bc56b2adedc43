"""Parse a DAG folder in a fresh interpreter and report what parsing touched, as JSON.

Run by tests/dags/test_dag_integrity.py as `python parse_probe.py DAG_FOLDER`. The metadata
DB URL is unreachable here (set by the caller) and every DBAPI connection any SQLAlchemy pool
opens is recorded, as are Connection and Variable lookups through the Task SDK: a DAG file that
queries a database or fetches a connection at parse time shows up in `db_connects`/`lookups`.
`heavy_modules` lists data-science packages present in sys.modules after parsing that were not
there after importing Airflow itself.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

HEAVY = ("pandas", "numpy", "great_expectations", "evidently", "mlflow", "sklearn", "scipy", "pyarrow")


def main(dag_folder: str) -> dict[str, Any]:
    import sqlalchemy as sa
    from sqlalchemy.pool import Pool

    db_connects: list[str] = []

    @sa.event.listens_for(Pool, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        db_connects.append(type(dbapi_conn).__module__)

    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.execution_time import context as sdk_context

    lookups: list[str] = []
    real_conn, real_var = sdk_context._get_connection, sdk_context._get_variable

    def get_connection(conn_id: str) -> Any:
        lookups.append(f"connection:{conn_id}")
        return real_conn(conn_id)

    def get_variable(key: str, deserialize_json: bool) -> Any:
        lookups.append(f"variable:{key}")
        return real_var(key, deserialize_json)

    sdk_context._get_connection = get_connection  # type: ignore[assignment]
    sdk_context._get_variable = get_variable  # type: ignore[assignment]

    before = {m for m in HEAVY if m in sys.modules}
    started = time.perf_counter()
    bag = DagBag(dag_folder=dag_folder)
    elapsed = time.perf_counter() - started
    return {
        "dag_ids": sorted(bag.dags),
        "import_errors": {k: v for k, v in bag.import_errors.items()},
        "db_connects": db_connects,
        "lookups": lookups,
        "heavy_modules": sorted(m for m in HEAVY if m in sys.modules and m not in before),
        "heavy_before": sorted(before),
        "parse_seconds": round(elapsed, 3),
        "per_file": {str(s.file): round(s.duration.total_seconds(), 3) for s in bag.dagbag_stats},
    }


if __name__ == "__main__":
    print("PROBE-RESULT " + json.dumps(main(sys.argv[1])))
