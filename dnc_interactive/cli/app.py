"""``dnc-interactive app``: the live dashboard as a standalone page (Voilà, or JupyterLab).

Serves the packaged notebook ``dnc_interactive/app/dashboard.ipynb``, prints the URL and,
unless ``--no-browser``, opens it. The page reads ``?state=...`` (a state string from the
dashboard's share box), ``?preset=...`` and ``?layout=lecture``; ``--lecture`` serves the
lecture layout (four large panels, one strip of controls, keys Space / →).

Locked down by default (Voilà, see :mod:`dnc_interactive.cli.app_server`): it binds
127.0.0.1, needs a token (random per start, in the printed URL), serves only local Host
headers and same-origin pages, shows visitors no tracebacks, shuts a visitor's kernel down
when the tab closes or reloads (or when no page has been connected to it for 2 minutes),
culls kernels idle for 30 minutes, and checks its own readiness without starting a kernel.
``--classroom`` serves the local network instead (all interfaces, any Host, token kept).

Fast: ``--pool`` kernels (default 2) are pre-heated: they import torch and the widgets and
wait for a visitor, so a page gets a warm kernel. The URL is printed once one is warm.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
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
ALL_INTERFACES = "0.0.0.0"
DEFAULT_PORT = 8866
NOTEBOOK = Path(__file__).resolve().parent.parent / "app" / "dashboard.ipynb"
SERVERS = ("voila", "lab")
DEFAULT_POOL = 2  # a page and its reload both find a warm kernel
FILL_DELAY = 3  # s before a used pool kernel is replaced: the page loads first
#: the JupyterLab extensions the page needs (others, e.g. jupytext, only cost load time)
EXTENSIONS = (
    "@jupyter-widgets/jupyterlab-manager",
    "@voila-dashboards/widgets-manager8",
    "anywidget",
)
DEFAULT_CULL_IDLE = 1800  # s without kernel activity before a visitor's kernel is shut down
DEFAULT_CULL_GONE = 120  # s with no page connected before a visitor's kernel is shut down
CULL_INTERVAL = 30
#: The layout ``--lecture`` asks for, and the environment variable that carries it to the
#: kernels (JupyterLab pages have no query; Voilà pages get ``?layout=lecture`` as well).
LECTURE = "lecture"
LAYOUT_ENV = "DNC_INTERACTIVE_LAYOUT"
WARM_TIMEOUT = 240.0  # s to wait for the first pre-heated kernel before printing the URL anyway


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "app",
        help="open the live collapse dashboard in the browser",
        description="Serve the live deep-neural-collapse dashboard as a standalone page "
        f"(Voilà by default; JupyterLab with --server lab), print its URL and open it. Stop it "
        f"with Ctrl-C. By default it listens on {HOST} only and needs the token in the printed "
        "URL; only local Host headers and same-origin pages are served; visitors see no "
        "tracebacks; a visitor's kernel is shut down when the tab closes or reloads, when no "
        f"page has been connected to it for {DEFAULT_CULL_GONE} s, or after --cull-idle "
        "seconds without activity. Pre-heated kernels (--pool) make a page live in seconds.",
        epilog="Classroom: `dnc-interactive app --classroom --no-browser` listens on all "
        "interfaces, accepts any Host header and prints the URLs (with the token) to hand "
        "out; give --pool about the number of students arriving at once (each kernel takes "
        "~400 MB) and --token a fixed token if you like. Options after `--` go to the server "
        "unchanged (Voilà or Jupyter traitlets, e.g. -- --MappingKernelManager.cull_interval=10).",
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
        "--lecture",
        action="store_true",
        help="the lecture layout: four large panels (loss vs L*, per-layer NC1, the features"
        " in 2-D, the Gram vs the optimum) with fonts >= 18 px, the controls in one strip;"
        " Space plays / pauses, the right arrow steps",
    )
    p.add_argument(
        "--tour",
        action="store_true",
        help="open the guided tour (five steps: collapse, depth, the λ threshold, class"
        " imbalance, beyond two classes; then the sandbox)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the server command and URL, start nothing"
    )
    g = p.add_argument_group("access and kernels")
    g.add_argument(
        "--classroom",
        action="store_true",
        help=f"serve the local network: listen on {ALL_INTERFACES} and accept any Host header "
        "(the token is still required); prints the URLs to hand out",
    )
    g.add_argument(
        "--token",
        default=None,
        help="the access token (default: a new random one each start); it is part of the URL",
    )
    g.add_argument(
        "--pool",
        type=int,
        default=DEFAULT_POOL,
        help=f"pre-heated kernels kept waiting for visitors (default {DEFAULT_POOL}; 0: start "
        "a kernel per page, ~30 s of spinner)",
    )
    g.add_argument(
        "--cull-idle",
        type=int,
        default=DEFAULT_CULL_IDLE,
        help="shut down a visitor's kernel after this many seconds without activity "
        f"(default {DEFAULT_CULL_IDLE}; 0: never, which also stops culling kernels whose page "
        "is gone)",
    )
    p.add_argument(
        "server_args",
        nargs="*",
        metavar="-- SERVER_OPTION",
        help="options passed to the server unchanged (after --)",
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


def choose_port(requested: int | None, host: str = HOST) -> int:
    """The requested port (UsageError if invalid or taken), else 8866 or a free one."""
    if requested is not None:
        if not 1 <= requested <= 65535:
            raise common.UsageError(
                f"argument --port: {requested} is not valid: expected an int in [1, 65535]"
            )
        if not port_free(requested, host):
            raise common.UsageError(
                f"argument --port: {requested} is not valid: the port is already in use on {host}"
            )
        return requested
    return DEFAULT_PORT if port_free(DEFAULT_PORT, host) else free_port(host)


def _query_params(args: argparse.Namespace) -> dict[str, str]:
    params: dict[str, str] = {}
    if getattr(args, "lecture", False):
        params["layout"] = LECTURE
    if getattr(args, "tour", False):
        params["tour"] = "1"
    if not (args.preset or args.state):
        return params  # the widgets (torch, altair) are imported only to check these
    from dnc_interactive.widgets.presets import get_preset
    from dnc_interactive.widgets.state import decode_state

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
    return params


def server_command(
    server: str,
    port: int,
    notebook: Path,
    *,
    classroom: bool = False,
    pool: int = DEFAULT_POOL,
    cull_idle: int = DEFAULT_CULL_IDLE,
    extra: list[str] | tuple[str, ...] = (),
) -> tuple[list[str], str]:
    """The command that serves ``notebook`` and the URL of its page (without query or token).

    The token is not on the command line (other users can read that): the server reads it
    from the ``JUPYTER_TOKEN`` environment variable.
    """
    ip = ALL_INTERFACES if classroom else HOST
    base = f"http://{HOST}:{port}/"
    culling = [
        f"--MappingKernelManager.cull_idle_timeout={cull_idle}",
        f"--MappingKernelManager.cull_interval={CULL_INTERVAL}",
        "--MappingKernelManager.cull_connected=True",
    ]
    if server == "voila":
        cmd = [
            sys.executable,
            "-m",
            "dnc_interactive.cli.app_server",
            str(notebook),
            "--no-browser",
            f"--port={port}",
            "--Voila.port_retries=0",
            f"--Voila.ip={ip}",
            "--Voila.auto_token=True",  # the token from JUPYTER_TOKEN
            f"--AppVoila.allow_remote_access={classroom}",
            "--VoilaConfiguration.show_tracebacks=False",
            "--VoilaConfiguration.template=dnc",
            "--VoilaConfiguration.multi_kernel_manager_class="
            "dnc_interactive.cli.app_server.AppKernelManager",
            f"--VoilaConfiguration.preheat_kernel={pool > 0}",
            f"--VoilaConfiguration.default_pool_size={max(pool, 0)}",
            f"--VoilaKernelManager.fill_delay={FILL_DELAY}",
            *(f"--VoilaConfiguration.extension_allowlist={name}" for name in EXTENSIONS),
            *culling,
            f"--AppKernelManager.cull_disconnected_timeout={DEFAULT_CULL_GONE}",
        ]
        return _with_extra(cmd, extra), base
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.ip={ip}",
        f"--ServerApp.allow_remote_access={classroom}",
        f"--ServerApp.root_dir={notebook.parent}",
        *culling,
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return _with_extra(cmd, extra), f"{base}lab/tree/{notebook.name}"


def _with_extra(cmd: list[str], extra: list[str] | tuple[str, ...]) -> list[str]:
    """``cmd`` + the user's server options, which replace ours of the same name (traitlets
    refuses an option given twice)."""
    given = {a.split("=", 1)[0] for a in extra if a.startswith("--")}
    return [a for a in cmd if a.split("=", 1)[0] not in given] + list(extra)


def page_url(base: str, token: str, params: dict[str, str] | None = None, lab: bool = False) -> str:
    """``base`` with the dashboard's query (Voilà) or ``?reset`` (JupyterLab), and the token."""
    from urllib.parse import quote, urlencode

    if lab:
        return f"{base}?reset&token={quote(token, safe='')}"
    return f"{base}?{urlencode({**(params or {}), 'token': token})}"


def lan_addresses() -> list[str]:
    """This machine's name and LAN address, for classroom URLs (best effort, no traffic)."""
    names = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.254.254.254", 1))  # UDP: picks the outgoing interface, sends nothing
            names.append(s.getsockname()[0])
    except OSError:
        pass
    try:
        names.append(socket.gethostname())
    except OSError:
        pass
    return [n for n in dict.fromkeys(names) if n and not n.startswith("127.")]


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


def server_status(base: str, token: str, timeout: float = 2.0) -> dict | None:
    """``GET /api/status`` with the token: the server's JSON status, None if it does not
    answer. Starts no kernel (the readiness check must not leak one)."""
    request = urllib.request.Request(
        base.rstrip("/") + "/api/status", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8") or "{}")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_for(base: str, proc: subprocess.Popen, token: str, timeout: float = 60.0) -> dict | None:
    """Poll the server's status until it answers (its status) or it exits / ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        status = server_status(base, token)
        if status is not None:
            return status
        time.sleep(0.2)
    return None


def wait_warm(base: str, proc: subprocess.Popen, token: str, timeout: float = WARM_TIMEOUT) -> bool:
    """Wait until a pre-heated kernel is warm (True), the server exits or ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        status = server_status(base, token) or {}
        pool = status.get("pool") or {}
        if not pool.get("size") or pool.get("warm", 0) >= 1:
            return True
        time.sleep(0.3)
    return False


KERNEL_MIB = 400  # resident memory of one pre-heated kernel (torch + widgets imported), measured


def pool_cap() -> int:
    """The largest ``--pool``: the kernels that half of this machine's memory holds, 1..64."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # not POSIX: assume a 4 GiB laptop
        total = 4 << 30
    return max(1, min(64, int(total / 2 / (KERNEL_MIB << 20))))


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    server = _pick_server(args.server)
    cap = pool_cap()
    if not 0 <= args.pool <= cap:
        raise common.UsageError(
            f"argument --pool: {args.pool} is not valid: expected an int in [0, {cap}] (each"
            f" pre-heated kernel holds about {KERNEL_MIB} MiB; the cap is what half of this"
            " machine's memory holds, at most 64)"
        )
    if args.cull_idle < 0:
        raise common.UsageError(
            f"argument --cull-idle: {args.cull_idle} is not valid: expected an int >= 0"
        )
    if args.token is not None and (not args.token or not args.token.isprintable()):
        raise common.UsageError("argument --token: expected a non-empty printable string")
    params = _query_params(args)
    port = choose_port(args.port, ALL_INTERFACES if args.classroom else HOST)
    token = args.token or secrets.token_hex(16)
    notebook = NOTEBOOK
    if not notebook.is_file():
        raise common.UsageError(f"the dashboard notebook is missing: {notebook}")
    if server == "lab" and not args.dry_run:  # JupyterLab saves notebooks: serve a copy
        folder = Path(tempfile.mkdtemp(prefix="dnc-interactive-app-"))
        notebook = Path(shutil.copy(NOTEBOOK, folder / NOTEBOOK.name))
    cmd, base = server_command(
        server,
        port,
        notebook,
        classroom=args.classroom,
        pool=args.pool,
        cull_idle=args.cull_idle,
        extra=args.server_args,
    )
    if server == "lab" and (args.preset or args.state):
        common.warn("note: --state/--preset apply to the Voilà page only")
    url = page_url(base, token, params, lab=server == "lab")
    if args.dry_run:
        layout = f"{LAYOUT_ENV}={LECTURE} " if args.lecture else ""
        print(f"{layout}JUPYTER_TOKEN={token} " + " ".join(cmd))
        print(url)
        return 0

    # The charts' offline JavaScript bundle is built (once per machine, then cached) by the
    # first kernel that imports the widgets, not here: this process never imports torch.
    env = {**os.environ, "JUPYTER_TOKEN": token}
    if args.lecture:
        env[LAYOUT_ENV] = LECTURE  # the kernels read it (Dashboard.from_query)
    else:
        env.pop(LAYOUT_ENV, None)
    proc = subprocess.Popen(cmd, env=env)
    previous = None
    if hasattr(signal, "SIGTERM"):
        try:  # a terminated app stops its server too (the finally below)
            previous = signal.signal(signal.SIGTERM, _interrupt)
        except ValueError:  # not in the main thread
            previous = None
    try:
        if wait_for(base, proc, token) is None:
            if proc.poll() is not None:
                common.warn(f"the {server} server exited with status {proc.returncode}")
                return 1
            common.warn(f"the {server} server did not answer within 60 s; still trying")
        elif server == "voila" and args.pool > 0:
            print("warming up a kernel (imports torch and the widgets) ...", flush=True)
            if not wait_warm(base, proc, token):
                if proc.poll() is not None:
                    common.warn(f"the {server} server exited with status {proc.returncode}")
                    return 1
                common.warn("no pre-heated kernel is warm yet: the first page may take a while")
        print(f"dnc-interactive dashboard: {url}", flush=True)
        if args.classroom:
            for name in lan_addresses():
                print(f"  on the network: {url.replace(HOST, name, 1)}", flush=True)
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
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
