"""Alerts against real local HTTP and SMTP servers, de-duplicated through a real history store."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socketserver
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from driftguard.contract import AlertConfig, AlertRoute
from driftguard.reporting.alerts import Alert, dispatch
from driftguard.store import HistoryStore, dispose_engines

NOW = datetime(2013, 6, 3, 6, tzinfo=UTC)


# --------------------------------------------------------------------------- servers


class Receiver:
    """Requests received by the local HTTP server; /fail answers 500."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []


@pytest.fixture(scope="module")
def http_server() -> Iterator[tuple[str, Receiver]]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.requests.append(
                {"path": self.path, "headers": dict(self.headers), "json": json.loads(body.decode("utf-8"))}
            )
            self.send_response(500 if self.path.startswith("/fail") else 200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", receiver
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """A minimal SMTP server: enough of RFC 5321 for smtplib.send_message."""
    messages: list[dict[str, Any]] = []

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            msg: dict[str, Any] = {"rcpt": []}
            self.wfile.write(b"220 localhost test SMTP\r\n")
            while line := self.rfile.readline():
                cmd = line.decode().strip()
                upper = cmd.upper()
                if upper.startswith(("EHLO", "HELO")):
                    self.wfile.write(b"250 localhost\r\n")
                elif upper.startswith("MAIL FROM:"):
                    msg["from"] = cmd[10:].strip("<> ")
                    self.wfile.write(b"250 OK\r\n")
                elif upper.startswith("RCPT TO:"):
                    msg["rcpt"].append(cmd[8:].strip("<> "))
                    self.wfile.write(b"250 OK\r\n")
                elif upper == "DATA":
                    self.wfile.write(b"354 end with .\r\n")
                    data = []
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        data.append(chunk.decode())
                    msg["data"] = "".join(data)
                    messages.append(msg)
                    msg = {"rcpt": []}
                    self.wfile.write(b"250 queued\r\n")
                elif upper == "QUIT":
                    self.wfile.write(b"221 bye\r\n")
                    return
                else:
                    self.wfile.write(b"250 OK\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], messages
    server.shutdown()
    server.server_close()


@pytest.fixture
def store(sqlite_url: str) -> Iterator[HistoryStore]:
    yield HistoryStore(sqlite_url)
    dispose_engines()


def drift_alert(features: tuple[str, ...] = ("carrier", "distance"), **kw: Any) -> Alert:
    base = dict(
        model="flight_delay",
        kind="drift",
        severity="warning",
        title=f"drift in {len(features)} feature(s)",
        body="drift share 0.42 >= 0.30",
        report_path="reports/flight_delay/20130527T0000_20130603T0000/drift.html",
        runbook_url="README.md#on-call",
        state=",".join(sorted(features)),
    )
    base.update(kw)
    return Alert(**base)


# --------------------------------------------------------------------------- tests


def test_webhook_posts_the_alert_as_json_with_env_resolved_url(
    http_server: tuple[str, Receiver], store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, receiver = http_server
    monkeypatch.setenv("DG_TEST_HOOK", f"{base}/hook-a")
    config = AlertConfig(routes=[AlertRoute(kind="webhook", url="${DG_TEST_HOOK}")])
    alert = drift_alert()
    before = len(receiver.requests)
    assert dispatch(alert, config, store=store, now=NOW) is True
    (req,) = receiver.requests[before:]
    assert req["path"] == "/hook-a"
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["json"] == {
        "model": "flight_delay",
        "kind": "drift",
        "severity": "warning",
        "title": "drift in 2 feature(s)",
        "body": "drift share 0.42 >= 0.30",
        "report_path": "reports/flight_delay/20130527T0000_20130603T0000/drift.html",
        "runbook_url": "README.md#on-call",
        "state": "carrier,distance",
        "fingerprint": alert.fingerprint,
        "sent_at": "2013-06-03T06:00:00+00:00",
        "source": "driftguard",
    }
    assert store.alert_last_sent("flight_delay", alert.fingerprint) == NOW


def test_same_alert_is_suppressed_until_repeat_after(
    http_server: tuple[str, Receiver], store: HistoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    base, receiver = http_server
    config = AlertConfig(routes=[AlertRoute(kind="webhook", url=f"{base}/hook-b")], repeat_after=timedelta(days=1))
    hits = lambda: len([r for r in receiver.requests if r["path"] == "/hook-b"])  # noqa: E731
    assert dispatch(drift_alert(), config, store=store, now=NOW)
    with caplog.at_level(logging.INFO, logger="driftguard.reporting.alerts"):
        assert dispatch(drift_alert(), config, store=store, now=NOW + timedelta(hours=23)) is False
    assert (
        "alert suppressed: drift drift in 2 feature(s) for flight_delay already sent at 2013-06-03T06:00" in caplog.text
    )
    assert hits() == 1
    # A changed state is a new alert; the original is re-sent once repeat_after has passed.
    assert dispatch(drift_alert(("carrier", "distance", "temp")), config, store=store, now=NOW + timedelta(hours=23))
    assert hits() == 2
    assert dispatch(drift_alert(), config, store=store, now=NOW + timedelta(days=1))
    assert hits() == 3
    # Feature order does not make a different alert.
    assert drift_alert(("distance", "carrier")).fingerprint == drift_alert().fingerprint


def test_failed_webhook_is_logged_loudly_never_raises_and_is_retried(
    http_server: tuple[str, Receiver], store: HistoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    base, receiver = http_server
    config = AlertConfig(
        routes=[
            AlertRoute(kind="log"),
            AlertRoute(kind="webhook", url=f"{base}/fail"),
            AlertRoute(kind="webhook", url=f"{base}/ok-c"),
        ]
    )
    alert = drift_alert(kind="quality_critical", severity="critical", title="2 critical checks failed")
    with caplog.at_level(logging.INFO, logger="driftguard.reporting.alerts"):
        assert dispatch(alert, config, store=store, now=NOW) is True
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        f"ALERT DELIVERY FAILED via webhook {base}/fail for flight_delay: HTTP 500" in r.getMessage() for r in errors
    )
    assert any("ALERT quality_critical (flight_delay" in r.getMessage() for r in errors)  # critical -> ERROR
    assert any(
        r.getMessage() == "alert quality_critical for flight_delay delivered via webhook (HTTP 200)"
        for r in caplog.records
    )
    # Not recorded as sent: the next run tries again instead of staying silent.
    assert store.alert_last_sent("flight_delay", alert.fingerprint) is None
    assert dispatch(alert, config, store=store, now=NOW + timedelta(minutes=5)) is True
    assert len([r for r in receiver.requests if r["path"] == "/ok-c"]) == 2


def test_unreachable_host_and_missing_env_var_do_not_raise(
    store: HistoryStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DG_TEST_MISSING", raising=False)
    config = AlertConfig(
        routes=[
            AlertRoute(kind="webhook", url="http://127.0.0.1:9/closed"),
            AlertRoute(kind="webhook", url="${DG_TEST_MISSING}"),
        ]
    )
    with caplog.at_level(logging.ERROR, logger="driftguard.reporting.alerts"):
        assert dispatch(drift_alert(), config, store=store, now=NOW) is True
    text = caplog.text
    assert "ALERT DELIVERY FAILED via webhook http://127.0.0.1:9/closed for flight_delay: URLError" in text
    assert "ALERT DELIVERY FAILED via webhook ${DG_TEST_MISSING} for flight_delay" in text
    assert "environment variable DG_TEST_MISSING is not set" in text
    assert "2 route(s) failed; it will be re-sent on the next run" in text


def test_slack_route_posts_text(
    http_server: tuple[str, Receiver], store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, receiver = http_server
    monkeypatch.setenv("DG_TEST_SLACK", f"{base}/slack")
    config = AlertConfig(routes=[AlertRoute(kind="slack", url="${DG_TEST_SLACK}")])
    assert dispatch(drift_alert(kind="retrain", severity="info", title="retrain started"), config, store=store, now=NOW)
    (req,) = [r for r in receiver.requests if r["path"] == "/slack"]
    assert req["json"] == {
        "text": "[INFO] flight_delay: retrain started\ndrift share 0.42 >= 0.30\n"
        "Report: reports/flight_delay/20130527T0000_20130603T0000/drift.html\nRunbook: README.md#on-call"
    }


def test_email_route_sends_through_smtp(
    smtp_server: tuple[int, list[dict[str, Any]]], store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, messages = smtp_server
    monkeypatch.setenv("DRIFTGUARD_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DRIFTGUARD_SMTP_PORT", str(port))
    monkeypatch.setenv("DRIFTGUARD_SMTP_FROM", "driftguard@example.com")
    config = AlertConfig(routes=[AlertRoute(kind="email", to=["oncall@example.com", "ml@example.com"])])
    alert = drift_alert(kind="rollback", severity="critical", title="champion v3 unservable: rolled back to v2")
    assert dispatch(alert, config, store=store, now=NOW)
    (msg,) = messages
    assert msg["from"] == "driftguard@example.com"
    assert msg["rcpt"] == ["oncall@example.com", "ml@example.com"]
    parsed = email.message_from_string(msg["data"], policy=email.policy.default)
    assert parsed["Subject"] == "[driftguard][critical] flight_delay: champion v3 unservable: rolled back to v2"
    assert parsed["To"] == "oncall@example.com, ml@example.com"
    assert parsed["X-Driftguard-Fingerprint"] == alert.fingerprint
    assert parsed.get_content().splitlines()[-1] == "Runbook: README.md#on-call"


def test_email_without_smtp_host_is_skipped_with_a_warning(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("DRIFTGUARD_SMTP_HOST", raising=False)
    config = AlertConfig(routes=[AlertRoute(kind="email", to=["oncall@example.com"])])
    with caplog.at_level(logging.WARNING, logger="driftguard.reporting.alerts"):
        assert dispatch(drift_alert(), config, store=store, now=NOW)
    assert "alert route email skipped for flight_delay: DRIFTGUARD_SMTP_HOST is not set" in caplog.text
    # A skipped route is not a failure: the alert counts as sent (no re-send every run).
    assert store.alert_last_sent("flight_delay", drift_alert().fingerprint) == NOW


def test_broken_store_still_sends(caplog: pytest.LogCaptureFixture, tmp_path) -> None:
    (tmp_path / "not_a_dir").write_text("a file where the store's folder should be")
    broken = HistoryStore(f"sqlite:///{tmp_path}/not_a_dir/h.db")
    try:
        with caplog.at_level(logging.WARNING, logger="driftguard.reporting.alerts"):
            assert dispatch(drift_alert(), AlertConfig(), store=broken, now=NOW) is True
    finally:
        dispose_engines()
    assert "alert de-duplication unavailable for flight_delay" in caplog.text
    assert "could not record alert drift for flight_delay in the history store" in caplog.text
    assert "ALERT drift (flight_delay" in caplog.text


def test_alert_rejects_unknown_kind_and_severity() -> None:
    with pytest.raises(ValueError, match=r"alert for model 'flight_delay': kind 'oops' is not one of"):
        drift_alert(kind="oops")
    with pytest.raises(ValueError, match=r"severity 'loud' is not one of \('info', 'warning', 'critical'\)"):
        drift_alert(severity="loud")


def test_the_default_runbook_page_opens_at_the_alerts_section() -> None:
    def runbook_of(url: str | None, kind: str = "drift") -> str | None:
        return Alert(model="m", kind=kind, severity="info", title="t", runbook_url=url).runbook_url

    assert runbook_of("/driftguard/runbook") == "/driftguard/runbook#drift"
    assert runbook_of("https://airflow.example.com/driftguard/runbook/", "no_data") == (
        "https://airflow.example.com/driftguard/runbook/#no_data"
    )
    assert runbook_of("/driftguard/runbook#board") == "/driftguard/runbook#board"  # an anchor given is kept
    assert runbook_of("https://wiki.example.com/ml-oncall") == "https://wiki.example.com/ml-oncall"  # a team's own
    assert runbook_of(None) is None


def test_a_root_relative_runbook_is_sent_with_airflows_address(
    http_server: tuple[str, Receiver], store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, receiver = http_server
    monkeypatch.setenv("DG_TEST_SLACK", f"{base}/slack-runbook")
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    config = AlertConfig(routes=[AlertRoute(kind="slack", url="${DG_TEST_SLACK}")])
    assert dispatch(drift_alert(runbook_url="/driftguard/runbook"), config, store=store, now=NOW)
    (req,) = [r for r in receiver.requests if r["path"] == "/slack-runbook"]
    assert req["json"]["text"].endswith("\nRunbook: https://airflow.example.com/driftguard/runbook#drift")
