"""The folder where one run's steps leave their results for the next steps.

Monitoring and retraining runs are chains of Airflow tasks in separate processes: each step
writes its frames (Parquet) and results (JSON) into the run's own folder and the next steps read
them. This module is that folder, for both flows: the paths, atomic writes (a retried or parallel
step never reads half a file) and a read that says which earlier step did not run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from driftguard.step_results import StepResult, load

R = TypeVar("R", bound=StepResult)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkDir:
    """One run's work folder. `label` names the run in messages; a missing file raises `error`
    with `rerun` (what to do about it) appended."""

    root: Path
    label: str
    error: type[Exception] = RuntimeError
    rerun: str = "Clear and rerun the whole DAG run, not a single task."

    def file(self, name: str) -> Path:
        return self.root / name

    def exists(self, name: str) -> bool:
        return self.file(name).exists()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _atomic(self, name: str, write: Callable[[Path], None]) -> None:
        """`write` into a temporary file beside `name`, then rename it into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{name}.")
        os.close(fd)
        try:
            write(Path(tmp))
            os.replace(tmp, self.file(name))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write_bytes(self, name: str, data: bytes) -> None:
        self._atomic(name, lambda path: path.write_bytes(data))

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        self._atomic(name, lambda path: path.write_text(json.dumps(data, default=str, indent=1)))

    def read_json(self, name: str) -> dict[str, Any]:
        try:
            return json.loads(self.file(name).read_text())
        except FileNotFoundError:
            raise self._missing(name) from None

    def write_result(self, result: StepResult) -> None:
        """A step's result, as its file (`result.FILE`) in the work folder."""
        self.write_json(result.FILE, result.to_json())

    def read_result(self, cls: type[R]) -> R:
        """The result an earlier step of this run wrote (MonitorError/RetrainError if it did not)."""
        return load(cls, self.read_json(cls.FILE))

    def write_frame(self, name: str, frame: Any) -> None:
        """Parquet. The reader leaves only a column of an incompatible SQL type as read (its schema
        check fails; nothing else reads its values); if such a column mixes numbers and text, Arrow
        cannot type it, and its values are written as text rather than failing the run."""
        import pyarrow as pa

        arrow_errors = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)
        try:
            self._atomic(name, lambda path: frame.to_parquet(path, index=False))
            return
        except arrow_errors as exc:
            error = exc
        mixed = [c for c in frame.columns if frame[c].dtype == object and not _all_text(frame[c])]
        if not mixed:
            raise self.error(f"{self.label}: cannot write {name}: {error}") from None
        log.warning("%s: columns %s mix numbers and text; written to %s as text", self.label, mixed, name)
        as_text = frame.assign(**{c: frame[c].map(_text_or_none) for c in mixed})
        try:
            self._atomic(name, lambda path: as_text.to_parquet(path, index=False))
        except arrow_errors as exc:
            raise self.error(f"{self.label}: cannot write {name} (columns {mixed}): {exc}") from None

    def read_frame(self, name: str) -> Any:
        import pandas as pd

        if not self.exists(name):
            raise self._missing(name)
        return pd.read_parquet(self.file(name))

    def _missing(self, name: str) -> Exception:
        return self.error(
            f"{self.label}: {name} is missing from {self.root}: an earlier step did not run. {self.rerun}"
        )


def _all_text(s: Any) -> bool:
    import pandas as pd

    return pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty")


def _text_or_none(value: Any) -> str | None:
    import pandas as pd

    return None if pd.api.types.is_scalar(value) and pd.isna(value) else str(value)
