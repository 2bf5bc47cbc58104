"""``dnc-interactive app``: arguments, the server command, and the launch path (mocked).

The live server (Host/Origin/token checks, kernels) is tested in ``test_app_server.py``;
the page in a real browser in ``tests/browser/test_app_browser.py``.
"""

import socket
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest

from dnc_interactive.cli import app as app_cli
from dnc_interactive.cli import main


def _dry_run(capsys, *argv):
    assert main(["app", "--dry-run", *argv]) == 0
    cmd, url = capsys.readouterr().out.strip().splitlines()
    env, _, cmd = cmd.partition(" ")
    assert env.startswith("JUPYTER_TOKEN=")
    return env.removeprefix("JUPYTER_TOKEN="), cmd.split(), url


def test_dry_run_prints_a_locked_down_localhost_voila_command(capsys):
    token, cmd, url = _dry_run(capsys, "--port", "8871")
    assert cmd[1:3] == ["-m", "dnc_interactive.cli.app_server"]
    assert str(app_cli.NOTEBOOK) in cmd and app_cli.NOTEBOOK.is_file()
    for flag in (
        "--Voila.ip=127.0.0.1",
        "--port=8871",
        "--Voila.port_retries=0",
        "--Voila.auto_token=True",
        "--AppVoila.allow_remote_access=False",
        "--VoilaConfiguration.show_tracebacks=False",
        "--VoilaConfiguration.preheat_kernel=True",
        "--VoilaConfiguration.default_pool_size=2",
        "--VoilaConfiguration.template=dnc",
        "--MappingKernelManager.cull_idle_timeout=1800",
        "--MappingKernelManager.cull_connected=True",
        "--AppKernelManager.cull_disconnected_timeout=120",
    ):
        assert flag in cmd, flag
    allowed = [a.split("=", 1)[1] for a in cmd if "extension_allowlist=" in a]
    assert allowed == list(app_cli.EXTENSIONS)  # only the widget extensions load on the page
    assert not any(token in part for part in cmd)  # the token is not on the command line
    assert len(token) >= 32
    assert url == f"http://127.0.0.1:8871/?token={token}"


def test_each_start_has_a_new_token_unless_one_is_given(capsys):
    a = _dry_run(capsys, "--port", "8871")[0]
    b = _dry_run(capsys, "--port", "8871")[0]
    assert a != b
    token, _, url = _dry_run(capsys, "--port", "8871", "--token", "class-of-2026")
    assert token == "class-of-2026" and url.endswith("?token=class-of-2026")


def test_dry_run_with_a_preset_and_state_puts_them_in_the_url(capsys):
    from dnc_interactive.widgets import Settings, encode_state

    state = encode_state(Settings.build(depth=3))
    token, _, url = _dry_run(
        capsys, "--port", "8872", "--preset", "classic UFM (L = 1)", "--state", state
    )
    assert url.startswith("http://127.0.0.1:8872/?preset=classic+UFM")
    query = parse_qs(urlsplit(url).query)
    assert query == {"preset": ["classic UFM (L = 1)"], "state": [state], "token": [token]}


def test_classroom_listens_on_all_interfaces_accepts_any_host_and_keeps_the_token(capsys):
    token, cmd, url = _dry_run(capsys, "--port", "8876", "--classroom", "--pool", "3")
    assert "--Voila.ip=0.0.0.0" in cmd and "--AppVoila.allow_remote_access=True" in cmd
    assert "--VoilaConfiguration.default_pool_size=3" in cmd
    assert "--Voila.auto_token=True" in cmd and f"token={token}" in url


def test_pool_0_and_cull_idle_and_server_options(capsys):
    _, cmd, _ = _dry_run(
        capsys, "--port", "8877", "--pool", "0", "--cull-idle", "60", "--", "--Voila.x=1"
    )
    assert "--VoilaConfiguration.preheat_kernel=False" in cmd
    assert "--MappingKernelManager.cull_idle_timeout=60" in cmd
    assert cmd[-1] == "--Voila.x=1"
    _, cmd, _ = _dry_run(capsys, "--port", "8877", "--", "--MappingKernelManager.cull_interval=5")
    assert [a for a in cmd if "cull_interval" in a] == ["--MappingKernelManager.cull_interval=5"]


def test_lab_server_command_has_a_token_and_binds_localhost(capsys):
    token, cmd, url = _dry_run(capsys, "--server", "lab", "--port", "8873")
    assert cmd[1:3] == ["-m", "jupyterlab"] and "--ServerApp.ip=127.0.0.1" in cmd
    assert "--ServerApp.allow_remote_access=False" in cmd
    assert url == f"http://127.0.0.1:8873/lab/tree/dashboard.ipynb?reset&token={token}"


def test_help_documents_the_access_flags(capsys):
    with pytest.raises(SystemExit):
        main(["app", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--classroom", "--token", "--pool", "--cull-idle", "127.0.0.1", "0.0.0.0"):
        assert words in text, words


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--port", "0"], "argument --port: 0 is not valid"),
        (["--port", "70000"], "argument --port: 70000 is not valid"),
        (["--server", "flask"], "argument --server: 'flask' is not valid"),
        (["--preset", "nope"], "argument --preset: preset='nope' is not valid"),
        (["--state", "!!"], "argument --state: state='!!' is not valid"),
        (["--pool", "-1"], "argument --pool: -1 is not valid"),
        (["--pool", "100000"], "argument --pool: 100000 is not valid: expected an int in [0, "),
        (["--cull-idle", "-5"], "argument --cull-idle: -5 is not valid"),
        (["--token", ""], "argument --token"),
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


def test_run_starts_the_server_waits_for_a_warm_kernel_prints_the_url_and_stops_it(
    monkeypatch, capsys
):
    started = {}

    class FakeServer:
        returncode = 0

        def __init__(self, cmd, env=None):
            started["cmd"], started["env"] = cmd, env
            self.alive = True

        def poll(self):
            return None if self.alive else 0

        def wait(self, timeout=None):
            self.alive = False
            return 0

        def terminate(self):
            started["terminated"] = True
            self.alive = False

    def ready(base, proc, token, timeout=60.0):
        started["probed"] = (base, token)
        return {"kernels": 1, "pool": {"size": 1, "warm": 1}}

    monkeypatch.setattr(subprocess, "Popen", FakeServer)
    monkeypatch.setattr(app_cli, "wait_for", ready)
    monkeypatch.setattr(app_cli, "wait_warm", lambda *a, **k: started.setdefault("warm", True))
    monkeypatch.setattr(app_cli.webbrowser, "open", lambda url: started.setdefault("opened", url))
    assert main(["app", "--port", "8874", "--token", "tok"]) == 0
    out = capsys.readouterr().out
    assert "dnc-interactive dashboard: http://127.0.0.1:8874/?token=tok" in out
    assert started["cmd"][:3] == [sys.executable, "-m", "dnc_interactive.cli.app_server"]
    assert started["env"]["JUPYTER_TOKEN"] == "tok"
    assert started["probed"] == ("http://127.0.0.1:8874/", "tok") and started["warm"]
    assert started["opened"] == "http://127.0.0.1:8874/?token=tok"
    assert main(["app", "--port", "8875", "--no-browser"]) == 0
    assert started["opened"] == "http://127.0.0.1:8874/?token=tok"  # not opened again


def test_the_readiness_probe_asks_the_status_endpoint_with_the_token(monkeypatch):
    seen = {}

    class Response:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b'{"kernels": 0}'

    def urlopen(request, timeout=None):
        seen["url"], seen["auth"] = request.full_url, request.get_header("Authorization")
        return Response()

    monkeypatch.setattr(app_cli.urllib.request, "urlopen", urlopen)
    assert app_cli.server_status("http://127.0.0.1:1/", "tok") == {"kernels": 0}
    assert seen == {"url": "http://127.0.0.1:1/api/status", "auth": "token tok"}


def test_free_port_helpers():
    port = app_cli.free_port()
    assert 1 <= port <= 65535 and app_cli.port_free(port)
    assert app_cli.port_free(app_cli.choose_port(None))


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["app", "--help"],
        ["train", "--help"],
        ["theory", "--help"],
        ["sweep", "--help"],
        ["app", "--dry-run"],
        ["train", "--depth", "3", "--no-such-flag"],
    ],
)
def test_parsing_and_help_import_no_torch(argv, imports_none):
    imports_none(f"from dnc_interactive.cli import main\nmain({argv!r})")


def test_the_package_names_stay_importable_and_lazy():
    code = (
        "import sys\n"
        "import dnc_interactive\n"
        "assert 'torch' not in sys.modules\n"
        "from dnc_interactive import DUFMConfig, DUFM, Trainer, Recipe, train, metrics, theory,"
        " sweep\n"
        "assert 'torch' in sys.modules\n"
        "assert set(dnc_interactive.__all__) <= set(dir(dnc_interactive))\n"
        "assert theory.__name__ == 'dnc_interactive.theory' and callable(sweep)\n"
        "try:\n"
        "    dnc_interactive.nope\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr


def test_pool_cap_follows_the_machine_memory():
    from dnc_interactive.cli import app

    cap = app.pool_cap()
    assert 1 <= cap <= 64
    assert main(["app", "--dry-run", "--pool", str(cap + 1)]) == 2


def test_dry_run_with_tour_opens_the_guided_tour(capsys):
    token, _, url = _dry_run(capsys, "--port", "8877", "--tour")
    assert parse_qs(urlsplit(url).query) == {"tour": ["1"], "token": [token]}
