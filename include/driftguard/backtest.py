"""Replay a feature log interval by interval under several retraining strategies.

The question a backtest answers: "had this contract's policy been running over this period,
how often would it have retrained, and how good would the serving model have been, compared
with never retraining and with retraining every interval?" Each strategy replays the SAME
library steps the DAGs run (`monitor.run_monitoring`, `retrain.run_retraining`), in data time,
against its own throwaway stores (history database, MLflow tracking store and artifacts,
reports), all reading one shared feature log:

* ``policy``: the contract's retrain policy and promotion gate, as in production;
* ``never``: the initial champion forever (monitoring only);
* ``always``: retrain every interval and promote the candidate whatever the gate says
  (the gate still runs and its verdict is recorded; the promotion uses `registry.promote`).

Every strategy starts from its own initial champion, trained by `run_retraining` as of the
backtest's start in its own store. Training is deterministic (seeded, same data), so the three
initial champions are the same model; training them separately keeps the stores independent
and avoids copying MLflow stores whose artifact paths are absolute.

"Realized metric" is what the monitoring run measured: the serving @champion's primary metric
on the labels that matured in the interval. An interval is "degraded" when that metric is worse
than the serving champion's own validation (holdout) metric by at least `policy.metric_drop`
(the same comparison the policy's metric_drop trigger makes; 0.05 when the trigger is off).
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from driftguard.contract import Change, ContractError, ModelContract, Problem, parse_contract
from driftguard.settings import Settings, get_settings

log = logging.getLogger(__name__)

STRATEGIES = ("policy", "never", "always")
ACTOR = "driftguard-backtest"
FEATURE_LOG_ENV = "DRIFTGUARD_FEATURE_LOG_URL"
DEFAULT_DEGRADED_DROP = 0.05
# Env variables a strategy's replay points at its own stores (see strategy_environment).
_ENV_KEYS = (
    "DRIFTGUARD_HOME",
    "DRIFTGUARD_HISTORY_URL",
    "DRIFTGUARD_REPORTS_DIR",
    "DRIFTGUARD_MLFLOW_ARTIFACTS",
    "MLFLOW_TRACKING_URI",
    FEATURE_LOG_ENV,
)


class BacktestError(RuntimeError):
    """The backtest cannot run; the message names the model and the cause."""


# --------------------------------------------------------------------------- contract overrides


def _set_path(raw: dict[str, Any], path: str, value: Any, *, where: str) -> None:
    """Set `a.b.0.c` in a nested document; list items by index, new mapping keys allowed
    (the contract's validation then rejects unknown fields by name)."""
    parts = path.split(".")
    node: Any = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ContractError([Problem(where, ".".join(parts[: i + 1]), f"no list item {part!r}")])
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            raise ContractError(
                [Problem(where, ".".join(parts[:i]), f"is a {type(node).__name__}, not a section with fields")]
            )
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]


def apply_overrides(contract: ModelContract, overrides: Sequence[str], *, file: str = "<contract>") -> ModelContract:
    """`path=value` overrides (values parsed as YAML), re-validated like a contract file: an invalid
    value or unknown field raises ContractError naming the field."""
    if not overrides:
        return contract
    raw = contract.model_dump(mode="json")
    where = f"{file} with --set {' '.join(overrides)}"
    for item in overrides:
        path, sep, text = item.partition("=")
        path = path.strip()
        if not sep or not path:
            raise ContractError([Problem(where, item or "<empty>", "expected --set dotted.path=value")])
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ContractError([Problem(where, path, f"value {text!r} is not valid YAML: {exc}")]) from None
        _set_path(raw, path, value, where=where)
    return parse_contract(yaml.safe_dump(raw, sort_keys=False), file=where)


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class BacktestConfig:
    contract: ModelContract
    start: datetime
    end: datetime
    interval: timedelta = timedelta(days=7)
    strategies: tuple[str, ...] = STRATEGIES
    feature_log_url: str | None = None  # None: the contract's source / the settings default
    work_dir: Path | None = None  # strategy stores; None: a temp dir removed afterwards
    progress: bool = True

    def __post_init__(self) -> None:
        name = self.contract.name
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise BacktestError(f"{name}: backtest start and end must be timezone-aware (UTC)")
        if self.interval <= timedelta(0):
            raise BacktestError(f"{name}: interval must be positive, got {self.interval}")
        if self.start + self.interval > self.end:
            raise BacktestError(
                f"{name}: {self.start.isoformat()}..{self.end.isoformat()} holds no whole interval of {self.interval}"
            )
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            raise BacktestError(f"{name}: unknown strategies {unknown}; choose from {', '.join(STRATEGIES)}")
        if self.contract.source.labels is None:
            raise BacktestError(f"{name}: the contract has no labels (source.labels); nothing to retrain or measure")

    def intervals(self) -> list[tuple[datetime, datetime]]:
        out, s = [], self.start
        while s + self.interval <= self.end:
            out.append((s, s + self.interval))
            s += self.interval
        return out

    @property
    def degraded_drop(self) -> Change:
        drop = self.contract.policy.metric_drop
        return Change(DEFAULT_DEGRADED_DROP, relative=False) if drop is None else drop


def utc(value: str | date | datetime) -> datetime:
    """A date or ISO timestamp as tz-aware UTC (naive means UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def strategy_settings(root: Path, strategy: str, feature_log_url: str, base: Settings | None = None) -> Settings:
    """Throwaway stores of one strategy under root/strategy; shared feature log and models dir."""
    base = base or get_settings()
    home = (root / strategy).resolve()
    return Settings(
        home=home,
        models_dir=base.models_dir,
        reports_dir=home / "reports",
        history_url=f"sqlite:///{home / 'history.db'}",
        feature_log_url=feature_log_url,
        mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        mlflow_artifacts_dir=home / "mlartifacts",
    )


@contextmanager
def strategy_environment(settings: Settings) -> Iterator[None]:
    """Point the process at one strategy's stores, and restore everything afterwards.

    Passing Settings is not enough on its own: `sources` resolves ${DRIFTGUARD_FEATURE_LOG_URL}
    from the environment, `mlflow_setup.artifacts_dir` reads DRIFTGUARD_MLFLOW_ARTIFACTS through
    get_settings(), `mlflow_setup.configure` sets MLflow's process-wide tracking URI, and the
    servability check's child process inherits the environment. Setting the variables to the
    strategy's own values makes every one of those agree with the Settings passed through."""
    import mlflow

    env = {
        "DRIFTGUARD_HOME": str(settings.home),
        "DRIFTGUARD_HISTORY_URL": settings.history_url,
        "DRIFTGUARD_REPORTS_DIR": str(settings.reports_dir),
        "DRIFTGUARD_MLFLOW_ARTIFACTS": str(settings.mlflow_artifacts_dir),
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        FEATURE_LOG_ENV: settings.feature_log_url,
    }
    saved = {key: os.environ.get(key) for key in _ENV_KEYS}
    saved_uri = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ.update(env)
    settings.ensure_dirs()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        mlflow.set_tracking_uri(saved_uri)  # None unsets it again


# --------------------------------------------------------------------------- results


@dataclass
class IntervalRow:
    """What one strategy saw and did in one interval."""

    strategy: str
    interval_start: str
    interval_end: str
    rows: int
    status: str  # monitoring status: ok | no_data | quality_failed
    quality_passed: bool
    drift_share: float | None
    drifted_features: int
    champion_version: str | None  # the serving champion during the interval
    champion_metric: float | None  # its validation (holdout) metric
    metric: float | None  # realized: serving champion on the matured labels
    degraded: bool | None  # None when not measured
    decision: bool  # the contract policy's verdict (recorded for every strategy)
    reasons: str  # fired triggers and blocking guards, by rule name
    retrain: str  # "" | promoted | rejected | forced | failed | skipped
    new_champion: str | None
    seconds: float = 0.0  # wall-clock time (excluded from determinism)

    def table(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("seconds")
        return d


@dataclass
class StrategyTotals:
    strategy: str
    intervals: int = 0
    retrains: int = 0
    promotions: int = 0
    failed_retrains: int = 0
    measured_intervals: int = 0
    mean_metric: float | None = None
    degraded_intervals: int = 0
    seconds: float = 0.0

    def table(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("seconds")
        return d


@dataclass
class BacktestResult:
    model: str
    metric_name: str
    greater_is_better: bool
    degraded_drop: str  # the policy's metric_drop, e.g. "5%" or "0.05 abs"
    start: str
    end: str
    interval: str
    rows: list[IntervalRow] = field(default_factory=list)
    totals: list[StrategyTotals] = field(default_factory=list)
    initial: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def table(self) -> list[dict[str, Any]]:
        """The per-interval table without timings: equal for equal inputs."""
        return [r.table() for r in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "metric": self.metric_name,
            "greater_is_better": self.greater_is_better,
            "degraded_drop": str(self.degraded_drop),
            "start": self.start,
            "end": self.end,
            "interval": self.interval,
            "seconds": round(self.seconds, 2),
            "initial_champion": self.initial,
            "totals": [asdict(t) for t in self.totals],
            "rows": [asdict(r) for r in self.rows],
        }


def is_degraded(
    metric: float | None, champion: float | None, *, drop: Change | float, greater_is_better: bool
) -> bool | None:
    """Realized metric worse than the champion's validation metric by at least `drop`."""
    if metric is None or champion is None or not (math.isfinite(metric) and math.isfinite(champion)):
        return None
    loss = champion - metric if greater_is_better else metric - champion
    limit = drop.of(champion) if isinstance(drop, Change) else drop
    return loss >= limit - 1e-9


def totals(rows: Sequence[IntervalRow], strategy: str) -> StrategyTotals:
    mine = [r for r in rows if r.strategy == strategy]
    measured = [r.metric for r in mine if r.metric is not None and math.isfinite(r.metric)]
    return StrategyTotals(
        strategy=strategy,
        intervals=len(mine),
        retrains=sum(1 for r in mine if r.retrain and r.retrain != "skipped"),
        promotions=sum(1 for r in mine if r.retrain in ("promoted", "forced")),
        failed_retrains=sum(1 for r in mine if r.retrain == "failed"),
        measured_intervals=len(measured),
        mean_metric=round(sum(measured) / len(measured), 6) if measured else None,
        degraded_intervals=sum(1 for r in mine if r.degraded),
        seconds=round(sum(r.seconds for r in mine), 2),
    )


# --------------------------------------------------------------------------- replay


def _champion(contract: ModelContract, settings: Settings) -> tuple[str | None, float | None]:
    """(@champion version, its holdout primary metric, which monitoring calls its validation metric)."""
    from mlflow import MlflowClient

    from driftguard import registry

    mv = registry.champion_version(contract.registered_model_name, tracking_uri=settings.mlflow_tracking_uri)
    if mv is None:
        return None, None
    run = MlflowClient(settings.mlflow_tracking_uri).get_run(mv.run_id)
    value = run.data.metrics.get(f"holdout_{contract.primary_metric}")
    return str(mv.version), (None if value is None else round(float(value), 6))


def _force_promote(contract: ModelContract, settings: Settings, version: str, at: datetime, why: str) -> None:
    """The `always` strategy: promote a candidate the gate rejected, through the registry's guarded promote."""
    from driftguard import registry
    from driftguard.store import HistoryStore

    name, uri = contract.registered_model_name, settings.mlflow_tracking_uri
    current = registry.champion_version(name, tracking_uri=uri)
    registry.promote(
        name,
        version,
        expected_champion=None if current is None else current.version,
        store=HistoryStore(settings.history_url),
        actor=ACTOR,
        reason=f"backtest: promoted without the gate ({why})",
        tracking_uri=uri,
        at=at,
    )


def _retrain(
    contract: ModelContract,
    settings: Settings,
    start: datetime,
    end: datetime,
    *,
    force: bool,
    summary: str,
    request: dict[str, Any] | None = None,
) -> tuple[str, str | None]:
    """One retraining run; (status, new champion version or None). Failures are recorded, not raised:
    one interval that cannot be trained on must not end a whole backtest."""
    from driftguard import retrain

    try:
        trigger = {"summary": summary, **(request or {})}  # the change point, as the DAG's Asset event carries it
        result = retrain.run_retraining(contract, start, end, trigger=trigger, settings=settings)
    except Exception as exc:
        log.warning("%s: retraining as of %s failed: %s: %s", contract.name, end.isoformat(), type(exc).__name__, exc)
        return "failed", None
    status = str(result["status"])
    if status == "rejected" and force:
        _force_promote(contract, settings, str(result["version"]), end, result.get("summary", "rejected"))
        return "forced", str(result["version"])
    return status, (str(result["version"]) if status == "promoted" else None)


def _reasons(contract: ModelContract, settings: Settings, start: datetime) -> tuple[bool, str]:
    """The recorded decision of the monitoring run, as rule names (details hold wall-clock text)."""
    from driftguard.store import HistoryStore

    runs = [r for r in HistoryStore(settings.history_url).runs(contract.name) if r.interval_start == start]
    if not runs:
        return False, ""
    run = runs[-1]
    fired = [r["rule"] for r in run.reasons if r["kind"] == "trigger" and r["fired"]]
    blocking = [r["rule"] for r in run.reasons if r["kind"] == "guard" and r["fired"]]
    text = ", ".join(fired) if fired else "no trigger"
    if fired and blocking and not run.retrain:
        text += " (blocked by " + ", ".join(blocking) + ")"
    return run.retrain, text


def initial_champion(config: BacktestConfig, settings: Settings) -> dict[str, Any]:
    """Train and promote the champion every strategy starts from, as of the backtest's start."""
    contract, start = config.contract, config.start
    status, _ = _retrain(
        contract,
        settings,
        start - config.interval,
        start,
        force=True,
        summary="backtest: initial champion as of the start",
    )
    version, metric = _champion(contract, settings)
    if version is None:
        raise BacktestError(
            f"{contract.name}: no initial champion as of {start.isoformat()} (retraining {status}); the feature log "
            f"needs labelled rows before the start covering training.validation + training.holdout "
            f"({contract.training.validation} + {contract.training.holdout}); see the log above"
        )
    return {"version": version, "metric": metric, "status": status}


def replay_interval(
    config: BacktestConfig, settings: Settings, strategy: str, start: datetime, end: datetime
) -> IntervalRow:
    """Monitor one interval with the serving champion, then act as the strategy says."""
    from driftguard import monitor

    contract = config.contract
    t0 = time.perf_counter()
    version, champion_metric = _champion(contract, settings)
    mon = monitor.run_monitoring(contract, start, end, settings=settings)
    decision, reasons = _reasons(contract, settings, start)
    metric = None if mon.get("metric") is None else round(float(mon["metric"]), 6)
    action, new = "", None
    if strategy == "always" or (strategy == "policy" and decision):
        action, new = _retrain(
            contract,
            settings,
            start,
            end,
            force=strategy == "always",
            summary=f"backtest {strategy}: {mon.get('summary', '')}",
            request=mon.get("retrain_request") if strategy == "policy" else None,
        )
    drift = mon.get("drift_share")
    return IntervalRow(
        strategy=strategy,
        interval_start=start.isoformat(),
        interval_end=end.isoformat(),
        rows=int(mon.get("rows") or 0),
        status=str(mon.get("status")),
        quality_passed=bool(mon.get("quality_passed")),
        drift_share=None if drift is None else round(float(drift), 6),
        drifted_features=len(mon.get("drifted_features") or ()),
        champion_version=version,
        champion_metric=champion_metric,
        metric=metric,
        degraded=is_degraded(
            metric, champion_metric, drop=config.degraded_drop, greater_is_better=contract.greater_is_better
        ),
        decision=decision,
        reasons=reasons,
        retrain=action,
        new_champion=new,
        seconds=round(time.perf_counter() - t0, 2),
    )


def replay_contract(contract: ModelContract) -> ModelContract:
    """The contract as a replay runs it: a logged prediction column holds the scores of the model
    that served back then, not of the champion this strategy serves, so every interval is scored
    by the strategy's own @champion instead (without this, every strategy would report the same
    metric whatever it retrained)."""
    if contract.source.prediction_column is None:
        return contract
    log.info(
        "%s: the backtest scores with each strategy's champion; logged column %r is not used",
        contract.name,
        contract.source.prediction_column,
    )
    source = contract.source.model_copy(update={"prediction_column": None})
    return contract.model_copy(update={"source": source})


def run_backtest(config: BacktestConfig) -> BacktestResult:
    """Replay every strategy over every interval; strategies run one after the other, each in its
    own stores and environment."""
    from tqdm import tqdm

    from driftguard.contract import format_duration

    t0 = time.perf_counter()
    contract = replay_contract(config.contract)
    config = dataclasses.replace(config, contract=contract)
    base = get_settings()
    url = config.feature_log_url or os.environ.get(FEATURE_LOG_ENV) or base.feature_log_url
    intervals = config.intervals()
    result = BacktestResult(
        model=contract.name,
        metric_name=contract.primary_metric,
        greater_is_better=contract.greater_is_better,
        degraded_drop=str(config.degraded_drop),
        start=config.start.isoformat(),
        end=config.end.isoformat(),
        interval=format_duration(config.interval),
    )
    root = config.work_dir or Path(tempfile.mkdtemp(prefix=f"driftguard-backtest-{contract.name}-"))
    log.info(
        "%s: backtest %s..%s, %d intervals of %s, strategies %s, stores in %s",
        contract.name,
        result.start,
        result.end,
        len(intervals),
        result.interval,
        ",".join(config.strategies),
        root,
    )
    bar = tqdm(
        total=len(intervals) * len(config.strategies),
        desc=f"backtest {contract.name}",
        unit="run",
        disable=not config.progress,
    )
    try:
        for strategy in config.strategies:
            settings = strategy_settings(root, strategy, url, base)
            with strategy_environment(settings):
                bar.set_postfix_str(f"{strategy}: initial champion")
                result.initial[strategy] = initial_champion(config, settings)
                for start, end in intervals:
                    bar.set_postfix_str(f"{strategy} {start:%Y-%m-%d}")
                    result.rows.append(replay_interval(config, settings, strategy, start, end))
                    bar.update(1)
    finally:
        bar.close()
        if config.work_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    result.totals = [totals(result.rows, s) for s in config.strategies]
    result.seconds = time.perf_counter() - t0
    return result


# --------------------------------------------------------------------------- output


def _csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def write_outputs(result: BacktestResult, out_dir: Path) -> dict[str, Path]:
    """backtest.csv (per interval and strategy), totals.csv, backtest.json, backtest.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": out_dir / "backtest.csv",
        "totals": out_dir / "totals.csv",
        "json": out_dir / "backtest.json",
        "html": out_dir / "backtest.html",
    }
    paths["csv"].write_text(_csv([asdict(r) for r in result.rows]), encoding="utf-8")
    paths["totals"].write_text(_csv([asdict(t) for t in result.totals]), encoding="utf-8")
    paths["json"].write_text(json.dumps(result.to_dict(), indent=1, default=str), encoding="utf-8")
    paths["html"].write_text(render_html(result), encoding="utf-8")
    return paths


_COLORS = {"policy": "#1f77b4", "never": "#d62728", "always": "#2ca02c"}
_W, _H, _PAD, _BAR_H = 860, 260, 48, 70


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def timeline_svg(result: BacktestResult) -> str:
    """Metric per strategy over the intervals, retrain (ring) and promotion (dot) markers, and
    drift share bars of the first strategy underneath. Plain SVG: no script, works offline."""
    starts = sorted({r.interval_start for r in result.rows})
    if not starts:
        return ""
    metrics = [r.metric for r in result.rows if r.metric is not None]
    lo, hi = (min(metrics), max(metrics)) if metrics else (0.0, 1.0)
    if hi - lo < 1e-6:
        lo, hi = lo - 0.05, hi + 0.05
    n = len(starts)
    step = (_W - 2 * _PAD) / max(n - 1, 1)

    def x(i: int) -> float:
        return _PAD + i * step

    def y(v: float) -> float:
        return _PAD / 2 + (hi - v) / (hi - lo) * (_H - _PAD)

    index = {s: i for i, s in enumerate(starts)}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H + _BAR_H + 20}" role="img" '
        f'aria-label="{html.escape(result.metric_name)} per strategy over time">',
        f'<text x="4" y="14" font-size="11">{html.escape(result.metric_name)} ({_fmt(hi)} top, {_fmt(lo)} '
        "bottom)</text>",
    ]
    for strategy in dict.fromkeys(r.strategy for r in result.rows):
        color = _COLORS.get(strategy, "#555")
        rows = [r for r in result.rows if r.strategy == strategy]
        points = " ".join(f"{x(index[r.interval_start]):.1f},{y(r.metric):.1f}" for r in rows if r.metric is not None)
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}">'
            f"<title>{html.escape(strategy)}</title></polyline>"
        )
        for r in rows:
            if not r.retrain or r.metric is None:
                continue
            cx, cy = x(index[r.interval_start]), y(r.metric)
            promoted = r.retrain in ("promoted", "forced")
            fill = color if promoted else "white"
            tip = html.escape(f"{strategy} {r.interval_start}: retrain {r.retrain} {r.reasons}")
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{fill}" stroke="{color}">'
                f"<title>{tip}</title></circle>"
            )
    first = result.rows[0].strategy
    base = _H + _BAR_H
    parts.append(f'<text x="4" y="{_H + 12}" font-size="11">drift share ({html.escape(first)})</text>')
    for r in (r for r in result.rows if r.strategy == first and r.drift_share is not None):
        h = r.drift_share * (_BAR_H - 16)
        tip = html.escape(f"{r.interval_start}: drift share {r.drift_share:.2f}")
        parts.append(
            f'<rect x="{x(index[r.interval_start]) - 3:.1f}" y="{base - h:.1f}" width="6" height="{h:.1f}" '
            f'fill="#999"><title>{tip}</title></rect>'
        )
    parts.append(f'<text x="{_PAD}" y="{base + 14}" font-size="11">{html.escape(starts[0][:10])}</text>')
    parts.append(
        f'<text x="{_W - _PAD}" y="{base + 14}" font-size="11" text-anchor="end">{html.escape(starts[-1][:10])}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "<p>no rows</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row.values()) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(result: BacktestResult) -> str:
    legend = " ".join(
        f'<span style="color:{_COLORS.get(t.strategy, "#555")}">&#9632; {html.escape(t.strategy)}</span>'
        for t in result.totals
    )
    title = f"Backtest {result.model}: {result.start[:10]} to {result.end[:10]} every {result.interval}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Realized {html.escape(result.metric_name)} = the serving champion on labels that matured in the interval.
Degraded = worse than the serving champion's validation {html.escape(result.metric_name)} by at least
{result.degraded_drop}. Filled dot: promotion; ring: rejected or failed retrain.</p>
<p>{legend}</p>
{timeline_svg(result)}
<h2>Totals</h2>
{_table([t.table() | {"seconds": t.seconds} for t in result.totals])}
<h2>Intervals</h2>
{_table([asdict(r) for r in result.rows])}
</body></html>
"""


def totals_text(result: BacktestResult) -> str:
    """The totals as a fixed-width table for the terminal."""
    cols = [
        "strategy",
        "retrains",
        "promotions",
        "failed",
        "measured",
        f"mean {result.metric_name}",
        "degraded",
        "seconds",
    ]
    lines = [" | ".join(cols)]
    for t in result.totals:
        lines.append(
            " | ".join(
                [
                    t.strategy,
                    str(t.retrains),
                    str(t.promotions),
                    str(t.failed_retrains),
                    f"{t.measured_intervals}/{t.intervals}",
                    _fmt(t.mean_metric),
                    str(t.degraded_intervals),
                    f"{t.seconds:.0f}",
                ]
            )
        )
    return "\n".join(lines)


__all__ = [
    "STRATEGIES",
    "BacktestConfig",
    "BacktestError",
    "BacktestResult",
    "IntervalRow",
    "StrategyTotals",
    "apply_overrides",
    "is_degraded",
    "render_html",
    "run_backtest",
    "strategy_environment",
    "strategy_settings",
    "timeline_svg",
    "totals",
    "utc",
    "write_outputs",
]
