"""What a DAG file needs from each contract, cached so that parsing a DAG file skips pydantic.

Airflow's dag-processor parses every DAG file in a fresh forked process, every
`min_file_process_interval`. Validating the contracts there costs the contract models' import
and a validation per file, per parse: about as much as Airflow's own TaskFlow imports. The
DAG files only need a few fields (name, owners, schedule, start date, catchup, task, runbook,
approval), so those are cached in ``$DRIFTGUARD_HOME/cache/dag_specs.json`` with the problems of
broken contracts. The cache key is the models folder, each contract file's size and mtime, and
the contract module's own source, so any edit revalidates. Stdlib only at import time.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_VERSION = 1
ENV_MODELS_DIR = "DRIFTGUARD_MODELS_DIR"
_CONTRACT_SOURCE = Path(__file__).parents[1] / "contract.py"


@dataclass(frozen=True)
class DagSpec:
    """The DAG-relevant part of one validated contract."""

    name: str
    owners: tuple[str, ...]
    schedule: str
    start_date: date
    catchup: bool
    task: str
    description: str
    runbook_url: str | None
    require_approval: bool

    @classmethod
    def from_contract(cls, contract: Any) -> DagSpec:
        return cls(
            name=contract.name,
            owners=tuple(contract.owners),
            schedule=contract.schedule,
            start_date=contract.start_date,
            catchup=contract.catchup,
            task=contract.task.value,
            description=contract.description,
            runbook_url=contract.alerts.runbook_url,
            require_approval=contract.promotion.require_approval,
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "owners": list(self.owners), "start_date": self.start_date.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DagSpec:
        return cls(**{**data, "owners": tuple(data["owners"]), "start_date": date.fromisoformat(data["start_date"])})


@dataclass(frozen=True)
class SpecResult:
    """Specs of the valid contracts by model name; (file, field, message) of every problem."""

    specs: dict[str, DagSpec]
    problems: list[tuple[str, str, str]] = field(default_factory=list)


def _fingerprint(models_dir: Path) -> list[Any]:
    files = sorted([*models_dir.glob("*.yaml"), *models_dir.glob("*.yml")]) if models_dir.is_dir() else []
    stamp = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    source = _CONTRACT_SOURCE.stat()
    return [CACHE_VERSION, str(models_dir.resolve()), models_dir.is_dir(), stamp, source.st_size, source.st_mtime_ns]


def validate_folder(models_dir: Path) -> Any:
    """Every contract in `models_dir`, validated (pydantic): a LoadResult, valid and broken apart.

    A missing folder is reported as a problem, not silently treated as "no models"."""
    from driftguard.contract import ContractError, LoadResult, Problem, contract_files, load_contracts

    if not models_dir.is_dir():
        problem = Problem(str(models_dir), "<folder>", f"models folder does not exist (set {ENV_MODELS_DIR})")
        return LoadResult({}, {str(models_dir): ContractError([problem])})
    return load_contracts(contract_files(models_dir))


def _validate(models_dir: Path) -> SpecResult:
    """The cache-miss path: full validation, reduced to specs and problems."""
    from driftguard.contract import iter_problems

    result = validate_folder(models_dir)
    specs = {name: DagSpec.from_contract(c) for name, c in result.contracts.items()}
    return SpecResult(specs, [(p.file, p.field, p.message) for p in iter_problems(result)])


def load_specs(models_dir: Path, cache_file: Path | None) -> SpecResult:
    """The specs of `models_dir`, from `cache_file` when it still matches the files, else
    validated and written back (best effort: a read-only home only loses the speed-up)."""
    key = _fingerprint(models_dir)
    if cache_file is not None:
        try:
            cached = json.loads(cache_file.read_text())
            if cached.get("key") == key:
                specs = {s["name"]: DagSpec.from_json(s) for s in cached["specs"]}
                return SpecResult(specs, [tuple(p) for p in cached["problems"]])  # type: ignore[misc]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # missing, stale or unreadable: revalidate
    result = _validate(models_dir)
    if cache_file is not None:
        data = {"key": key, "specs": [s.to_json() for s in result.specs.values()], "problems": result.problems}
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=".dag_specs.")
            os.fchmod(fd, 0o644)  # readable by every Airflow component, like the contracts
            with os.fdopen(fd, "w") as out:
                json.dump(data, out)
            os.replace(tmp, cache_file)  # atomic: a parallel parse never reads half a file
        except OSError as exc:
            log.info("DAG spec cache not written (%s): contracts are validated at every parse", exc)
    return result
