-- Driftguard's PostgreSQL layout: one server, one database per concern.
-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d),
-- as POSTGRES_USER, who then owns every database below. Safe to re-run by hand:
--   docker compose exec postgres psql -U "$POSTGRES_USER" -d postgres -f /docker-entrypoint-initdb.d/10-create-databases.sql
--
--   airflow      Airflow metadata (and the Celery result backend under the celery profile)
--   mlflow       MLflow tracking server backend store (runs, registered models, aliases)
--   driftguard   Driftguard history: monitoring runs, drift results, decisions, promotions
--   feature_log  the demo feature log (seeded by `driftguard demo seed`); real deployments
--                point DRIFTGUARD_FEATURE_LOG_URL or a contract's source.url at their own database
--
-- CREATE DATABASE cannot run inside a DO block or a transaction, hence psql's \gexec.
SELECT format('CREATE DATABASE %I', db)
FROM unnest(ARRAY['airflow', 'mlflow', 'driftguard', 'feature_log']) AS db
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = db)
\gexec
