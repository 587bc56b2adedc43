"""Airflow 3 plugin: Driftguard's pages inside the Airflow UI, behind Airflow's login.

Registers the FastAPI app of driftguard.ui under /driftguard with Airflow's user dependency on
every route but Evidently's vendor bundle and font, which sandboxed report pages load without the
cookie (a plugin app has no authentication otherwise), a "Driftguard" entry in the Browse
menu and a "Driftguard" tab on DAG pages. Every Airflow component imports plugins, so this
module stays light: FastAPI and the history-store code only, no pandas/MLflow/Evidently.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin
from driftguard.settings import get_settings
from driftguard.ui import create_app
from fastapi import Request

URL_PREFIX = "/driftguard"


async def airflow_user(request: Request) -> Any:
    """Airflow's own get_user (bearer token first, else the UI's JWT cookie): 401/403 without one.

    Imported on the first request, so that schedulers and workers loading plugins never pay for
    Airflow's API security module."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    return await get_user(request, _oauth_token=None, bearer_credentials=credentials)


class DriftguardPlugin(AirflowPlugin):
    name = "driftguard"
    fastapi_apps = [
        {
            "app": create_app(get_settings(), auth_dependency=airflow_user),
            "url_prefix": URL_PREFIX,
            "name": "Driftguard",
        }
    ]
    external_views = [
        {
            "name": "Driftguard",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "driftguard",
        },
        {
            "name": "Driftguard",
            "href": f"{URL_PREFIX}/dags/{{DAG_ID}}",
            "destination": "dag",
            "url_route": "driftguard_dag",
        },
    ]
