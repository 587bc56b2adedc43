"""
### Driftguard contract errors (defines no Airflow DAG)

Airflow reports import errors per DAG file, so a broken model contract must not break
`monitoring.py` (every other model would lose its DAG). Instead `monitoring.py` skips
broken contracts and this file fails to import when there is any, with one line per
problem: `file: field.path: message`. The Airflow UI then shows it under "DAG Import
Errors" while every valid model keeps its DAGs. With no broken contract this file
defines nothing and raises nothing.
"""

from __future__ import annotations

from driftguard.airflow import dag_defaults

_broken = dag_defaults.broken_contracts(dag_defaults.dag_specs())
if _broken is not None:
    raise _broken
