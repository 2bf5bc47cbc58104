"""``dnc-interactive app``: the live dashboard as a standalone page (Voilà, or JupyterLab).

Serves the packaged notebook ``dnc_interactive/app/dashboard.ipynb`` on 127.0.0.1 only, prints
the URL and, unless ``--no-browser``, opens it. Nothing else is needed: the charts' JavaScript
is bundled offline (built once, then cached) before the server starts. The page reads
``?state=...`` (a state string from the dashboard's share box) and ``?preset=...``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import webbrowser
from pathlib import Path

from dnc_interactive.cli import common

HOST = "127.0.0.1"
DEFAULT_PORT = 8866
NOTEBOOK = Path(__file__).resolve().parent.parent / "app" / "dashboard.ipynb"
SERVERS = ("voila", "lab")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "app",
        help="open the live collapse dashboard in the browser",
        description="Serve the live deep-neural-collapse dashboard as a standalone page on "
        f"{HOST} (Voilà by default; JupyterLab with --server lab), print its URL and open it. "
        "Stop it with Ctrl-C.",
    )
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port to serve on (default {DEFAULT_PORT}, or a free one if that is taken)",
    )
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument(
        "--server",
        default="voila",
        help="voila (a clean page, the default) or lab (JupyterLab on the dashboard notebook)",
    )
    p.add_argument("--state", default=None, help="start from this state string (share box)")
    p.add_argument("--preset", default=None, help="start from this preset")
    p.add_argument(
        "--dry-run", action="store_true", help="print the server command and URL, start nothing"
    )
    p.set_defaults(handler=run)


def port_free(port: int, host: str = HOST) -> bool:
    """Whether ``host:port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = HOST) -> int:
    """A port the OS reports free on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def choose_port(requested: int | None) -> int:
    """The requested port (UsageError if invalid or taken), else 8866 or a free one."""
    if requested is not None:
        if not 1 <= requested <= 65535:
            raise common.UsageError(
                f"argument --port: {requested} is not valid: expected an int in [1, 65535]"
            )
        if not port_free(requested):
            raise common.UsageError(
                f"argument --port: {requested} is not valid: the port is already in use on {HOST}"
            )
        return requested
    return DEFAULT_PORT if port_free(DEFAULT_PORT) else free_port()


def _query(args: argparse.Namespace) -> str:
    from urllib.parse import urlencode

    from dnc_interactive.widgets.presets import get_preset
    from dnc_interactive.widgets.state import decode_state

    params = {}
    try:
        if args.preset:
            get_preset(args.preset)
            params["preset"] = args.preset
        if args.state:
            decode_state(args.state)
            params["state"] = args.state
    except ValueError as exc:
        flag = "--preset" if str(exc).startswith("preset") else "--state"
        raise common.UsageError(f"argument {flag}: {exc}") from None
    return ("?" + urlencode(params)) if params else ""


def server_command(server: str, port: int, notebook: Path) -> tuple[list[str], str]:
    """The command that serves ``notebook`` and the URL of the page (without a query)."""
    if server == "voila":
        cmd = [
            sys.executable,
            "-m",
            "voila",
            str(notebook),
            "--no-browser",
            f"--port={port}",
            f"--Voila.ip={HOST}",
            "--show_tracebacks=True",
        ]
        return cmd, f"http://{HOST}:{port}/"
    token = secrets.token_hex(16)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        f"--ServerApp.ip={HOST}",
        f"--ServerApp.root_dir={notebook.parent}",
        f"--IdentityProvider.token={token}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd, f"http://{HOST}:{port}/lab/tree/{notebook.name}?reset&token={token}"


def _pick_server(name: str) -> str:
    if name not in SERVERS:
        raise common.UsageError(
            f"argument --server: {name!r} is not valid: expected one of {SERVERS}"
        )
    if name == "voila" and importlib.util.find_spec("voila") is None:
        if importlib.util.find_spec("jupyterlab") is None:
            raise common.UsageError(
                "the app needs Voilà or JupyterLab: pip install 'dnc-interactive[app]'"
            )
        common.warn("Voilà is not installed: serving the dashboard in JupyterLab instead")
        return "lab"
    if name == "lab" and importlib.util.find_spec("jupyterlab") is None:
        raise common.UsageError("--server lab needs JupyterLab: pip install jupyterlab")
    return name


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> bool:
    """Poll ``url`` until it answers (True) or the server exits / ``timeout`` passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # the server answers (e.g. a redirect to a login page)
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    return False


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    server = _pick_server(args.server)
    query = _query(args)
    port = choose_port(args.port)
    notebook = NOTEBOOK
    if not notebook.is_file():
        raise common.UsageError(f"the dashboard notebook is missing: {notebook}")
    if server == "lab" and not args.dry_run:  # JupyterLab saves notebooks: serve a copy
        folder = Path(tempfile.mkdtemp(prefix="dnc-interactive-app-"))
        notebook = Path(shutil.copy(NOTEBOOK, folder / NOTEBOOK.name))
    cmd, url = server_command(server, port, notebook)
    if server == "voila":
        url += query
    elif query:
        common.warn("note: --state/--preset apply to the Voilà page only")
    if args.dry_run:
        print(" ".join(cmd))
        print(url)
        return 0

    from dnc_interactive.widgets.live_chart import javascript_bundle

    print("preparing the offline chart bundle (cached after the first run) ...", flush=True)
    javascript_bundle()
    proc = subprocess.Popen(cmd)
    previous = None
    if hasattr(signal, "SIGTERM"):
        try:  # a terminated app stops its server too (the finally below)
            previous = signal.signal(signal.SIGTERM, _interrupt)
        except ValueError:  # not in the main thread
            previous = None
    try:
        if not wait_for(f"http://{HOST}:{port}/", proc):
            if proc.poll() is not None:
                common.warn(f"the {server} server exited with status {proc.returncode}")
                return 1
            common.warn(f"the {server} server did not answer within 60 s; still trying")
        print(f"dnc-interactive dashboard: {url}", flush=True)
        print("press Ctrl-C to stop", flush=True)
        if not args.no_browser:
            webbrowser.open(url)
        return int(proc.wait() or 0)
    except KeyboardInterrupt:
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
