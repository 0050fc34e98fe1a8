"""`openfrp serve` (the real command, as the operator runs it) refuses a bad option or setting
in one line naming it, with exit 2: a port out of range on the command line, TLS files that
are no certificate and key, a ready file it cannot write, a STUN/TURN URL of another form
(turn://HOST:PORT was taken, then dropped by every peer without a word), a URL whose port is
out of range. None of these may start the server; each once gave a traceback (exit 1) or
a server that ran on without the setting."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

OPENFRP = str(Path(sys.executable).with_name("openfrp"))
TURN_FORM = "turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT]"


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `openfrp serve` on a free port; a server that starts after all is stopped."""
    environ = {**os.environ, "OPENFRP_DATA_DIR": str(tmp_path / "data"), **(env or {})}
    argv = [OPENFRP, "serve", "--port", "0", *args]
    with subprocess.Popen(
        argv, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"serve started for {args}: {err[-500:]}")
    assert "Traceback" not in err, err
    return proc.returncode, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("port", ["70000", "-1", "65536"])
def test_a_port_out_of_range_on_the_command_line_is_one_line(tmp_path: Path, port: str) -> None:
    """OverflowError from bind() was a traceback; OPENFRP_PORT=70000 was already checked."""
    status, err = serve(tmp_path, "--port", port)
    assert status == 2
    assert one_line(err) == f"openfrp serve: --port: must be 0-65535, got {port}"
    status, err = serve(tmp_path, env={"OPENFRP_PORT": port})
    assert status == 2
    assert one_line(err) == f"openfrp serve: environment: server.port: must be 0-65535, got {port}"


def test_a_port_in_use_is_one_line_with_the_next_step(tmp_path: Path) -> None:
    """The port another process holds: the line named the errno alone, not what to do."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, err = serve(tmp_path, "--port", str(port))
    assert status == 2
    assert one_line(err) == (
        f"openfrp serve: cannot listen on 127.0.0.1:{port}: Address already in use: another "
        "process (another openfrp server?) listens there; stop it, or give this server "
        "another port (--port, server.port)"
    )


@pytest.mark.parametrize(
    ("key", "command", "problem"),
    [
        ("app_command", "no-such-app-x1 --flag", "no program 'no-such-app-x1' on this server's"),
        ("app_command", "/opt/no/such/app", "'/opt/no/such/app' is not an executable file"),
        ("profile_mount_command", "sh -c 'mount", "cannot be split into words"),
    ],
)
def test_a_launchpad_command_that_cannot_start_stops_serve_in_one_line(
    tmp_path: Path, key: str, command: str, problem: str
) -> None:
    """The server started without a word, and every session of the launchpad ended at once
    (4018, 'the session's app exited with status 127'), naming no program."""
    config = tmp_path / "openfrp.toml"
    config.write_text(f"[launchpads.desktop]\n{key} = {json.dumps(command)}\n")
    status, err = serve(tmp_path, "--config", str(config))
    assert status == 2
    line = one_line(err)
    assert line.startswith(f"openfrp serve: launchpads.desktop.{key}: {problem}"), line


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two self-signed certificates with their keys, one key encrypted, and a file of text."""
    folder = tmp_path_factory.mktemp("pem")
    for name in ("a", "b"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", f"/CN={name}", "-keyout", str(folder / f"{name}.key"),
             "-out", str(folder / f"{name}.crt")],
            check=True, capture_output=True,
        )  # fmt: skip
    subprocess.run(
        ["openssl", "pkey", "-in", str(folder / "a.key"), "-aes256", "-passout", "pass:pw",
         "-out", str(folder / "encrypted.key")],
        check=True, capture_output=True,
    )  # fmt: skip
    (folder / "text.txt").write_text("openfrp-host\n")
    return folder


@pytest.mark.parametrize(
    ("cert", "key", "says"),
    [
        ("text.txt", "text.txt", "server.tls_cert '{cert}': not a PEM certificate "
         "(no BEGIN CERTIFICATE line)"),
        ("a.crt", "text.txt", "server.tls_key '{key}': not a PEM private key "
         "(no BEGIN PRIVATE KEY line)"),
        ("a.key", "a.key", "server.tls_cert '{cert}': not a PEM certificate "
         "(no BEGIN CERTIFICATE line)"),
        ("a.crt", "b.key", "server.tls_cert '{cert}', server.tls_key '{key}': the key is not "
         "the certificate's (KEY_VALUES_MISMATCH)"),
        ("a.crt", "encrypted.key", "server.tls_cert '{cert}', server.tls_key '{key}': the key "
         "is encrypted; give it without a passphrase"),
        ("missing.crt", "a.key", "server.tls_cert '{cert}': cannot read it "
         "(No such file or directory)"),
    ],
)  # fmt: skip
def test_tls_files_that_are_no_certificate_and_key_are_one_line(
    tmp_path: Path, pem: Path, cert: str, key: str, says: str
) -> None:
    """uvicorn loaded them only after the services started: ssl.SSLError as a traceback."""
    paths = {"cert": str(pem / cert), "key": str(pem / key)}
    config = tmp_path / "tls.toml"
    config.write_text(
        f'[server]\ndisplay = "synthetic"\ntls_cert = "{paths["cert"]}"\n'
        f'tls_key = "{paths["key"]}"\n'
    )
    status, err = serve(tmp_path, "--config", str(config))
    assert status == 2
    assert one_line(err) == f"openfrp serve: {says.format(**paths)}"


def test_a_ready_file_that_cannot_be_written_stops_the_start_naming_the_option(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "ready"
    folder.mkdir()
    fix = "give --ready-file a file path in a folder this user can write"
    status, err = serve(tmp_path, "--ready-file", str(folder))
    assert status == 2
    assert one_line(err) == f"openfrp serve: --ready-file {folder}: is a folder; {fix}"
    missing = tmp_path / "nowhere" / "ready.txt"
    status, err = serve(tmp_path, "--ready-file", str(missing))
    assert status == 2
    assert one_line(err) == (
        f"openfrp serve: --ready-file {missing}: no folder {missing.parent} to write in; {fix}"
    )
    assert not (tmp_path / "data").exists()  # refused before anything was made


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("turn_url", "turn://127.0.0.1:3478", "write turn:HOST:PORT (no //)"),
        ("turn_url", "turn:127.0.0.1:3478?transport=dtls",
         "only turn: addresses take ?transport=udp|tcp"),
        ("turn_url", "turn:127.0.0.1:99999", f"write {TURN_FORM}"),
        ("stun_url", "stun://127.0.0.1:3478", "write stun:HOST:PORT (no //)"),
        ("signaling_url", "ws://127.0.0.1:70000/signal", "Port out of range 0-65535"),
        ("public_url", "http://127.0.0.1:99999", "Port out of range 0-65535"),
    ],
)  # fmt: skip
def test_a_helper_url_of_another_form_stops_serve_in_one_line(
    tmp_path: Path, key: str, value: str, says: str
) -> None:
    """From the file and from the environment alike: the setting, the value, the right form.
    A relay-only FRP8 launchpad: with turn:// dropped, no session of it could connect."""
    server = {
        "display": "synthetic",
        "turn_url": "turn:127.0.0.1:3478",
        "turn_user": "u",
        "turn_password": "p",
        "ice_policy": "relay",
        key: value,
    }
    config = tmp_path / "helpers.toml"
    table = "".join(f'{name} = "{text}"\n' for name, text in server.items())
    config.write_text(f"[server]\n{table}[launchpads.desktop]\nfrp = 8\n")
    status, err = serve(tmp_path, "--config", str(config))
    assert status == 2
    assert one_line(err) == f"openfrp serve: {config}: server.{key}: '{value}': {says}"
    status, err = serve(tmp_path, env={f"OPENFRP_{key.upper()}": value})
    assert status == 2
    assert one_line(err) == f"openfrp serve: environment: server.{key}: '{value}': {says}"
