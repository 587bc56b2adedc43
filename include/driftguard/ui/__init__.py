"""Driftguard inside Airflow's UI: the FastAPI app the plugin mounts (board, model, candidate, rollback
and runbook pages, reports), and the extra links on Airflow's task pages."""
