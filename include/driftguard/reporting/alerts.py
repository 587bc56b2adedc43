"""Alerts: one `Alert`, sent to the contract's routes, de-duplicated through the history store.

An alert failure must never fail a monitoring run: `dispatch` logs every problem loudly
(ERROR) and never raises. Every alert is written to the log (INFO, WARNING, or ERROR when
critical) whatever the routes; the `log` route therefore needs no extra work.

Runbook: an alert whose `runbook_url` is the Driftguard runbook page (the contract default,
`/driftguard/runbook`) links the section of its kind (`/driftguard/runbook#drift`); see
driftguard.reporting.runbook. A root-relative runbook URL is sent with Airflow's address in front
(AIRFLOW__API__BASE_URL, set by docker-compose.yaml), so it opens from Slack or e-mail too.

De-duplication: an alert's fingerprint is a hash of (model, kind, state), where `state` is
what makes two alerts "the same" (e.g. the sorted drifted features). The same fingerprint
is not re-sent within `AlertConfig.repeat_after`. An alert is recorded as sent only when no
route failed, so a broken webhook is retried on the next run instead of silently skipped.

Routes: `webhook` (JSON POST of the alert), `slack` (incoming webhook, `{"text": ...}`),
`email` (SMTP from DRIFTGUARD_SMTP_HOST / _PORT / _FROM, optional _USER / _PASSWORD and
_STARTTLS=1; skipped with a warning when no host is set). `${ENV}` in URLs is resolved at
send time, so secrets never sit in contracts or logs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import smtplib
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from driftguard.contract import AlertConfig, AlertRoute, ContractError, format_duration, interpolate_env
from driftguard.reporting import runbook

if TYPE_CHECKING:
    from driftguard.store import HistoryStore

log = logging.getLogger(__name__)

KINDS = (
    "quality_critical",
    "drift",
    "drift_degraded",  # drift verdicts kept, but a plot (named) failed: the report is incomplete
    "drift_failed",  # the drift step failed: no drift signal for this interval
    "model_review",  # the champion is older than policy.max_model_age (never a retrain by itself)
    "retrain",
    "no_data",
    "unservable",
    "promotion",
    "rollback",
    "pipeline_failure",  # an Airflow task or DAG run failed (see driftguard.airflow.notifier)
)
SEVERITIES = ("info", "warning", "critical")
HTTP_TIMEOUT_S = 10.0
SMTP_TIMEOUT_S = 10.0

_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}


@dataclass(frozen=True)
class Alert:
    model: str
    kind: str
    severity: str
    title: str
    body: str = ""
    report_path: str | None = None
    runbook_url: str | None = None
    state: str = ""  # what makes it "the same alert"; part of the fingerprint

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"alert for model {self.model!r}: kind {self.kind!r} is not one of {list(KINDS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert for model {self.model!r}: severity {self.severity!r} is not one of {SEVERITIES}")
        # The Driftguard runbook page (the default runbook_url) opens at this kind's section.
        object.__setattr__(self, "runbook_url", runbook.link(self.runbook_url, self.kind))

    @property
    def fingerprint(self) -> str:
        raw = json.dumps([self.model, self.kind, self.state], separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def payload(self, now: datetime) -> dict[str, Any]:
        """The JSON a webhook receives."""
        return {**asdict(self), "fingerprint": self.fingerprint, "sent_at": now.isoformat(), "source": "driftguard"}

    def text(self) -> str:
        """Plain text for Slack, e-mail and the log."""
        lines = [f"[{self.severity.upper()}] {self.model}: {self.title}"]
        if self.body:
            lines.append(self.body)
        if self.report_path:
            lines.append(f"Report: {self.report_path}")
        if self.runbook_url:
            lines.append(f"Runbook: {self.runbook_url}")
        return "\n".join(lines)


class _Skipped(Exception):
    """A route that cannot be used here (e.g. no SMTP host): warned about, not a failure."""


def _post_json(url: str, payload: dict[str, Any]) -> int:
    data = json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "driftguard-alerts"},
    )
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        return int(response.status)


def _send_email(alert: Alert, to: list[str]) -> None:
    host = os.environ.get("DRIFTGUARD_SMTP_HOST")
    if not host:
        raise _Skipped("DRIFTGUARD_SMTP_HOST is not set")
    port = int(os.environ.get("DRIFTGUARD_SMTP_PORT", "25"))
    msg = EmailMessage()
    msg["Subject"] = f"[driftguard][{alert.severity}] {alert.model}: {alert.title}"
    msg["From"] = os.environ.get("DRIFTGUARD_SMTP_FROM", "driftguard@localhost")
    msg["To"] = ", ".join(to)
    msg["X-Driftguard-Fingerprint"] = alert.fingerprint
    msg.set_content(alert.text())
    with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_S) as smtp:
        if os.environ.get("DRIFTGUARD_SMTP_STARTTLS") == "1":
            smtp.starttls()
        user = os.environ.get("DRIFTGUARD_SMTP_USER")
        if user:
            smtp.login(user, os.environ.get("DRIFTGUARD_SMTP_PASSWORD", ""))
        smtp.send_message(msg)


def _send(route: AlertRoute, alert: Alert, now: datetime) -> str:
    """Deliver through one route; returns a short description for the log, raises on failure."""
    if route.kind == "log":
        return "log"
    if route.kind == "email":
        _send_email(alert, list(route.to or []))
        return f"email to {', '.join(route.to or [])}"
    url = interpolate_env(route.url or "", what=f"alerts.routes[{route.kind}].url")
    payload = alert.payload(now) if route.kind == "webhook" else {"text": alert.text()}
    status = _post_json(url, payload)
    return f"{route.kind} (HTTP {status})"


def _route_name(route: AlertRoute) -> str:
    # Never log a resolved URL: it may carry a secret. The unresolved `${VAR}` form is safe.
    return f"{route.kind} {route.url}" if route.url else route.kind


def _absolute_runbook(alert: Alert) -> Alert:
    """`/driftguard/runbook#drift` with AIRFLOW__API__BASE_URL in front, when that is set."""
    url, base = alert.runbook_url, os.environ.get("AIRFLOW__API__BASE_URL", "").strip().rstrip("/")
    if url and base and url.startswith("/") and not url.startswith("//"):
        return replace(alert, runbook_url=base + url)
    return alert


def dispatch(alert: Alert, config: AlertConfig, *, store: HistoryStore | None, now: datetime) -> bool:
    """Send `alert` through every route of `config` unless the same alert went out within
    `config.repeat_after`. Returns True if it went out (at least the log), False if suppressed.

    `store` is a HistoryStore (or None: no de-duplication). Never raises."""
    alert = _absolute_runbook(alert)
    fingerprint = alert.fingerprint
    try:
        last = store.alert_last_sent(alert.model, fingerprint) if store is not None else None
    except Exception as exc:  # the history DB being down must not silence an alert
        log.error("alert de-duplication unavailable for %s (%s): sending anyway", alert.model, exc)
        last = None
    if last is not None and now - last < config.repeat_after:
        log.info(
            "alert suppressed: %s %s for %s already sent at %s (repeat_after %s, fingerprint %s)",
            alert.kind,
            alert.title,
            alert.model,
            last.isoformat(),
            format_duration(config.repeat_after),
            fingerprint,
        )
        return False

    log.log(
        _LEVEL[alert.severity], "ALERT %s (%s, fingerprint %s)\n%s", alert.kind, alert.model, fingerprint, alert.text()
    )
    failed = 0
    for route in config.routes:
        name = _route_name(route)
        try:
            how = _send(route, alert, now)
        except _Skipped as exc:
            log.warning("alert route %s skipped for %s: %s", name, alert.model, exc)
            continue
        except ContractError as exc:
            failed += 1
            log.error("ALERT DELIVERY FAILED via %s for %s: %s", name, alert.model, exc)
            continue
        except urllib.error.HTTPError as exc:
            failed += 1
            log.error("ALERT DELIVERY FAILED via %s for %s: HTTP %s %s", name, alert.model, exc.code, exc.reason)
            continue
        except Exception as exc:  # network, SMTP, anything: log loudly, keep going
            failed += 1
            log.error("ALERT DELIVERY FAILED via %s for %s: %s: %s", name, alert.model, type(exc).__name__, exc)
            continue
        log.info("alert %s for %s delivered via %s", alert.kind, alert.model, how)

    if failed:
        log.error(
            "alert %s for %s: %d route(s) failed; it will be re-sent on the next run", alert.kind, alert.model, failed
        )
    elif store is not None:
        try:
            store.record_alert(
                alert.model,
                kind=alert.kind,
                fingerprint=fingerprint,
                sent_at=now,
                severity=alert.severity,
                title=alert.title,
            )
        except Exception as exc:
            log.error("could not record alert %s for %s in the history store: %s", alert.kind, alert.model, exc)
    return True
