"""What Driftguard's DAG files share: per-model DAG specs read from the contracts (cached, cheap to
parse), the defaults every DAG uses, and the failure notifier that records a failed task in history.
Only `notifier` imports Airflow at module level."""
