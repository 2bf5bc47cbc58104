"""``dnc-interactive app``: arguments, the server command, and the launch path (mocked)."""

import socket
import subprocess
import sys

import pytest

from dnc_interactive.cli import app as app_cli
from dnc_interactive.cli import main


def test_dry_run_prints_a_localhost_voila_command(capsys):
    assert main(["app", "--dry-run", "--port", "8871"]) == 0
    cmd, url = capsys.readouterr().out.strip().splitlines()
    assert "-m voila" in cmd and "--Voila.ip=127.0.0.1" in cmd and "--port=8871" in cmd
    assert str(app_cli.NOTEBOOK) in cmd and app_cli.NOTEBOOK.is_file()
    assert url == "http://127.0.0.1:8871/"


def test_dry_run_with_a_preset_and_state_puts_them_in_the_url(capsys):
    from dnc_interactive.widgets import Settings, encode_state

    state = encode_state(Settings.build(depth=3))
    assert (
        main(
            [
                "app",
                "--dry-run",
                "--port",
                "8872",
                "--preset",
                "classic UFM (L = 1)",
                "--state",
                state,
            ]
        )
        == 0
    )
    url = capsys.readouterr().out.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:8872/?preset=classic+UFM") and f"state={state}" in url


def test_lab_server_command_has_a_token_and_binds_localhost(capsys):
    assert main(["app", "--dry-run", "--server", "lab", "--port", "8873"]) == 0
    cmd, url = capsys.readouterr().out.strip().splitlines()
    assert "-m jupyterlab" in cmd and "--ServerApp.ip=127.0.0.1" in cmd
    assert "token=" in url and url.startswith("http://127.0.0.1:8873/lab/tree/dashboard.ipynb")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--port", "0"], "argument --port: 0 is not valid"),
        (["--port", "70000"], "argument --port: 70000 is not valid"),
        (["--server", "flask"], "argument --server: 'flask' is not valid"),
        (["--preset", "nope"], "argument --preset: preset='nope' is not valid"),
        (["--state", "!!"], "argument --state: state='!!' is not valid"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(argv, words, capsys):
    assert main(["app", "--dry-run", *argv]) == 2
    assert words in capsys.readouterr().err


def test_a_port_in_use_is_refused(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["app", "--dry-run", "--port", str(port)]) == 2
    assert "already in use" in capsys.readouterr().err


def test_run_starts_the_server_prints_the_url_and_stops_it(monkeypatch, capsys):
    started = {}

    class FakeServer:
        returncode = 0

        def __init__(self, cmd):
            started["cmd"] = cmd
            self.alive = True

        def poll(self):
            return None if self.alive else 0

        def wait(self, timeout=None):
            self.alive = False
            return 0

        def terminate(self):
            started["terminated"] = True
            self.alive = False

    monkeypatch.setattr(subprocess, "Popen", FakeServer)
    monkeypatch.setattr(app_cli, "wait_for", lambda url, proc, timeout=60.0: True)
    monkeypatch.setattr(app_cli.webbrowser, "open", lambda url: started.setdefault("opened", url))
    monkeypatch.setattr("dnc_interactive.widgets.live_chart.javascript_bundle", lambda: "bundle")
    assert main(["app", "--port", "8874"]) == 0
    out = capsys.readouterr().out
    assert "dnc-interactive dashboard: http://127.0.0.1:8874/" in out
    assert started["cmd"][:3] == [sys.executable, "-m", "voila"]
    assert started["opened"] == "http://127.0.0.1:8874/"
    assert main(["app", "--port", "8875", "--no-browser"]) == 0
    assert started["opened"] == "http://127.0.0.1:8874/"  # not opened again


def test_free_port_helpers():
    port = app_cli.free_port()
    assert 1 <= port <= 65535 and app_cli.port_free(port)
    assert app_cli.port_free(app_cli.choose_port(None))
