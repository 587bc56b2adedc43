"""Driftguard: monitoring and retraining for batch ML models, orchestrated by Airflow.

Import submodules explicitly (``from driftguard import contract``): this package
keeps its top level empty so DAG files that import the contract stay fast to parse.
"""

__version__ = "0.1.0"
