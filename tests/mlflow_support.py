"""MLflow's process-wide state, saved and put back, so no test sees another test's store.

`mlflow.set_tracking_uri` (and so `mlflow_setup.configure`) sets a module global *and*
MLFLOW_TRACKING_URI; `start_run` pushes onto a run stack. Left behind, they send a later test's
runs to an earlier test's (deleted) store, or to MLflow's default, ./mlflow.db in the working
directory. `tests/conftest.py` wraps every test in `restored_mlflow_globals()`; a module-scoped
fixture that configures MLflow for its module wraps its own lifetime in it too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def _uris() -> tuple[str | None, str | None]:
    """The tracking and registry URIs as set (None when unset), not as resolved: resolving an unset
    URI yields MLflow's default in the working directory, and restoring that would pin it."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return tracking_utils._tracking_uri, registry_utils._registry_uri


@contextmanager
def restored_mlflow_globals() -> Iterator[None]:
    """On exit: active runs ended, tracking and registry URIs and every MLFLOW_* variable as on entry."""
    saved_env = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    saved_uris = _uris() if "mlflow" in sys.modules else (None, None)
    try:
        yield
    finally:
        if "mlflow" in sys.modules:  # a test that never imported MLflow cannot have changed it
            import mlflow
            from mlflow.tracking._model_registry import utils as registry_utils

            while mlflow.active_run() is not None:
                mlflow.end_run()
            mlflow.set_tracking_uri(saved_uris[0])
            registry_utils._registry_uri = saved_uris[1]
        for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
            if key not in saved_env:
                del os.environ[key]
        os.environ.update(saved_env)
