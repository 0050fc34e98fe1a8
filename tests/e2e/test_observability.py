"""What an operator watches: /metrics during a real session and a real fault, /livez and
/readyz with their reasons, the operator's log, and the OpenAPI document against the README."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import E2E, FRP8_PAD
from tests.e2e.harness import (
    OPENFRP,
    REPO_ROOT,
    RESET_CODES,
    ServerProcess,
    bounded,
    stop_process,
    write_config,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(server: ServerProcess) -> Samples:
    status, text = get(server.url + "/metrics")
    assert status == 200, text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_metric(server: ServerProcess, name: str, at_least: float, **labels: str) -> Samples:
    for _ in bounded(10.0, step=0.1):
        samples = scrape(server)
        if value(samples, name, **labels) >= at_least:
            return samples
    raise AssertionError(f"{name}{labels} stayed below {at_least}: {value(samples, name)}")


def health(server: ServerProcess, path: str) -> tuple[int, dict[str, Any]]:
    status, text = get(server.url + path)
    body: dict[str, Any] = json.loads(text)
    return status, body


def test_metrics_follow_a_session_through_a_drop_and_a_registry_outage(
    e2e: E2E,
) -> None:
    redis = e2e.redis()
    server = e2e.server(
        account={"idle_timeout": 30.0},  # the terminal may take seconds to start
        server={"registry": redis.url, "video_fps": 10},
    )
    assert health(server, "/readyz") == (
        200,
        {
            "ready": True,
            "checks": {"registry": "ok", "event_log": "ok"},  # no FRP8 launchpad
            "reasons": [],
        },
    )
    ticket = server.launch("alice")
    sid = ticket["session_id"]
    proxy = e2e.proxy(server.port)
    term = e2e.connected(server, ticket, proxy)

    m = scrape(server)
    assert value(m, "openfrp_sessions", state="active") == 1
    assert value(m, "openfrp_sessions", state="disconnected") == 0
    assert value(m, "openfrp_connections") == 1
    assert value(m, "openfrp_sessions_launched_total") == 1
    assert value(m, "openfrp_connections_opened_total", frp="7") == 1
    assert value(m, "openfrp_time_to_connect_seconds_count") == 1
    assert 0 < value(m, "openfrp_time_to_connect_seconds_sum") < 5

    proxy.control("cut")  # the path drops without a close frame: 4029, then a resume
    lost = server.log.wait_event(event="session.disconnected", session_id=sid)
    assert lost["code"] in RESET_CODES, lost
    term.wait_line(r"^\[4103 RECONNECTING\] ", timeout=5)
    proxy.control("restore")
    term.wait_line(rf"^connected to {sid} as c-\w+ \(resumed\)$", timeout=10)
    m = wait_metric(server, "openfrp_resumes_total", 1)
    closed = {"code": str(lost["code"]), "side": "server", "event": "connection.closed"}
    assert value(m, "openfrp_codes_total", **closed) == 1
    assert value(m, "openfrp_time_to_connect_seconds_count") == 2
    assert value(m, "openfrp_sessions", state="active") == 1
    m = wait_metric(server, "openfrp_reconnect_attempts_total", 1)  # shipped by the terminal
    m = wait_metric(server, "openfrp_stream_fps_count", 1)  # the cut connection's stats
    stats = server.log.find(event="stats", session_id=sid, source="server")
    assert value(m, "openfrp_stream_fps_count") == len(stats)
    assert value(m, "openfrp_stream_fps_sum") == sum(s["attrs"]["fps"] for s in stats)
    assert value(m, "openfrp_stream_mbit_per_second_count") == len(stats)
    assert value(m, "openfrp_registry_errors_total", op="get") == 0

    redis.stop()  # a real outage of the shared registry
    status, ready = health(server, "/readyz")
    assert status == 503 and ready["ready"] is False
    assert ready["checks"]["event_log"] == "ok"
    assert ready["checks"]["registry"].startswith("registry: "), ready
    assert ready["reasons"] == [ready["checks"]["registry"]]
    assert health(server, "/livez") == (200, {"live": True})
    assert (
        server.api("POST", "/api/sessions", body={"user": "bob", "launchpad": "desktop"}).status
        == 503
    )
    m = scrape(server)
    assert value(m, "openfrp_registry_errors_total", op="get") >= 1
    assert value(m, "openfrp_sessions", state="active") == 1  # the session rides it out
    stderr = server.stderr()
    assert re.search(r" ERROR openfrp\.server: registry \w+ failed: ", stderr), stderr
    assert "Traceback" not in stderr


def _route_table() -> set[str]:
    """`METHOD /path` of every row of the README's HTTP API table, parameters as {}."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### HTTP API", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `(GET|POST|DELETE|PUT|PATCH|WS) ([^`?#\s]+)", section, re.MULTILINE)
    return {f"{method} {_unnamed(path)}" for method, path in rows}


def _unnamed(path: str) -> str:
    return re.sub(r"{\w+}", "{}", path)


def test_readyz_checks_the_frp8_peer_only_where_a_launchpad_uses_frp8(e2e: E2E) -> None:
    plain = e2e.server()
    assert health(plain, "/readyz")[1]["checks"] == {"registry": "ok", "event_log": "ok"}
    rtc = e2e.server(launchpads={"rtc": FRP8_PAD})
    for _ in bounded(10.0, step=0.1):  # its peer registers with its own hub once it listens
        status, ready = health(rtc, "/readyz")
        if status == 200:
            break
    assert ready["checks"] == {"registry": "ok", "event_log": "ok", "frp8_peer": "ok"}


def test_openapi_is_generated_from_the_routes_the_readme_lists(e2e: E2E) -> None:
    server = e2e.server()
    status, text = get(server.url + "/api/openapi.json")
    assert status == 200
    document = json.loads(text)
    assert document["openapi"].startswith("3.") and document["info"]["title"] == "openfrp"
    served = {
        f"{method.upper()} {_unnamed(path)}"
        for path, operations in document["paths"].items()
        for method in operations
    }
    served |= {f"WS {path}" for path in document["x-websockets"]}
    assert served == _route_table()
    launch = document["paths"]["/api/sessions"]["post"]
    assert launch["summary"] and launch["operationId"] == "post_launch"
    ticket = document["paths"]["/api/sessions/{session_id}/ticket"]["get"]
    assert [p["name"] for p in ticket["parameters"]] == ["session_id"]


def test_the_operator_log_is_json_lines_on_stderr(tmp_path: Path) -> None:
    kiosk = {"idle_timeout": 60.0, "reconnect_window": 90.0}  # valid, but working against itself
    config = write_config(tmp_path / "server.toml", tmp_path / "data", launchpads={"kiosk": kiosk})
    ready = tmp_path / "ready.txt"
    process = subprocess.Popen(
        [OPENFRP, "serve", f"--config={config}", "--log-format=json", f"--ready-file={ready}"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in bounded(15.0):
            if ready.exists() and len(ready.read_text().splitlines()) >= 2:
                break
        url = ready.read_text().splitlines()[0]
        assert get(url + "/livez")[0] == 200
    finally:
        stop_process(process)  # SIGTERM: the server stops as an operator would stop it
    assert process.stderr is not None
    lines = [json.loads(line) for line in process.stderr.read().splitlines()]
    messages = [line["message"] for line in lines]
    assert f"openfrp server e2e-host listening on {url}" in messages, messages
    assert any(m.startswith("config: registry sqlite ") for m in messages), messages
    doubt = (
        "launchpad kiosk: idle_timeout 60 s is shorter than reconnect_window 90 s: a terminal "
        "still reconnecting after idle_timeout is refused with 4009"
    )
    assert [line["level"] for line in lines if line["message"] == doubt] == ["warning"]
    assert "stopping on SIGTERM: live sessions end with 4019" in messages
    assert messages[-1] == "stopped"
    assert {line["logger"] for line in lines} == {"openfrp.server"}
    assert all(line["level"] in ("info", "warning") for line in lines), lines
