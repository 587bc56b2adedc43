# Driftguard image: every Airflow service of docker-compose.yaml and the MLflow server.
# One image keeps the MLflow client (in tasks) and the server on the same version.
# The tag must equal the apache-airflow pin in requirements.txt (tests/integration/test_compose.py checks it).
FROM apache/airflow:3.3.2-python3.11

# Directories that back named volumes: a fresh volume copies their owner (airflow, group 0) and
# group-writable mode, so any AIRFLOW_UID with group 0 can write (OpenShift-style, like the base image).
USER root
RUN mkdir -p /opt/airflow/reports /opt/airflow/driftguard /opt/airflow/auth /mlartifacts \
    && chown -R airflow:0 /opt/airflow/reports /opt/airflow/driftguard /opt/airflow/auth /mlartifacts \
    && chmod -R 2775 /opt/airflow/reports /opt/airflow/driftguard /opt/airflow/auth /mlartifacts
USER airflow

# Dependencies first (a cached layer). Naming apache-airflow==${AIRFLOW_VERSION} (set by the base
# image) keeps pip from up- or downgrading Airflow itself, as the image documentation recommends;
# pip check fails the build on a conflict with the providers the base image ships.
# The celery provider (CeleryExecutor, `celery` profile) comes with the base image's default
# extras; the import check makes a base image without it fail here instead of at run time.
COPY --chown=airflow:0 requirements.txt /opt/driftguard/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/driftguard/requirements.txt \
    && python -c "import airflow.providers.celery, mlflow, evidently, great_expectations, psycopg2" \
    && pip check

# The project (.dockerignore admits only pyproject.toml, include/, dags/, plugins/, docker/).
# The package installs without dependency resolution (pinned above); dags/, plugins/ and include/
# are baked in so the image runs without bind mounts; docker-compose.yaml mounts the working
# tree over them and PYTHONPATH prefers the mounted include/.
COPY --chown=airflow:0 . /opt/driftguard/
RUN pip install --no-cache-dir --no-deps /opt/driftguard \
    && mkdir -p /opt/driftguard/dags /opt/driftguard/plugins /opt/airflow/docker \
    && cp -R /opt/driftguard/dags /opt/driftguard/plugins /opt/driftguard/include /opt/airflow/ \
    && cp /opt/driftguard/docker/airflow_init.py /opt/airflow/docker/airflow_init.py

ENV DRIFTGUARD_HOME=/opt/airflow/driftguard \
    DRIFTGUARD_MODELS_DIR=/opt/airflow/include/models \
    DRIFTGUARD_REPORTS_DIR=/opt/airflow/reports \
    GX_ANALYTICS_ENABLED=false
