"""The floor of a DAG parse: a TaskFlow DAG with ten tasks and no imports of its own.

`make bench` parses it exactly like the files in dags/, so their parse times read against
what Airflow itself costs for any TaskFlow DAG file on the same machine and load."""

import pendulum
from airflow.sdk import chain, dag, task


@task
def step(i: int) -> int:
    return i


@dag(
    dag_id="driftguard_bench_floor",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["benchmark"],
)
def floor() -> None:
    chain(*(step.override(task_id=f"step_{i}")(i) for i in range(10)))


floor()
