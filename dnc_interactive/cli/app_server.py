"""The Voilà server behind ``dnc-interactive app``: Voilà, locked down and pre-warmed.

Run by ``dnc-interactive app`` as ``python -m dnc_interactive.cli.app_server NOTEBOOK
[--Voila.*/--VoilaConfiguration.*/--MappingKernelManager.* options]``, with the token in
the ``JUPYTER_TOKEN`` environment variable. On top of standalone Voilà (whose visitors can
only exchange widget messages with their kernel, never execute code) it:

* checks the ``Host`` header (``AppVoila.allow_remote_access``, off by default: only loopback
  addresses and ``localhost`` are served, which stops DNS rebinding); Voilà itself serves
  any Host. Cross-origin requests and websockets are refused by Jupyter Server's checks
  (no ``allow_origin`` is set);
* sets the ``_xsrf`` cookie on the dashboard page, so the page's close/reload beacon
  (``POST /voila/api/shutdown/<kernel>``) passes the XSRF check and the visitor's kernel
  is shut down (without the cookie Voilà refuses it and every closed tab leaves a kernel);
* shuts down a handed-out kernel that has had no page connected for
  ``AppKernelManager.cull_disconnected_timeout`` seconds (a crashed tab, a lost network, a
  beacon that never arrived): a run whose page is gone stops there. Pre-heated kernels
  waiting in the pool are never culled;
* serves ``GET /api/kernels`` (the running kernels, as in Jupyter Server, each with a
  ``pooled`` flag) and ``GET /api/status`` (kernel count and pool warmth), both behind the
  token: the CLI's readiness check uses them, so it starts no kernel;
* renders with the ``dnc`` template (Voilà's lab template without its CDN links).

``dnc-interactive app`` also loads only the page's JupyterLab extensions (widgets, anywidget)
and delays the pool's refill by a few seconds, so it does not compete with the page loading.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

# jsonschema (imported by jupyter_events) builds an IRI grammar with lark when
# rfc3987_syntax is installed: 1-4 s of start-up. No schema served here uses "iri".
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from jupyter_core.utils import ensure_async  # noqa: E402
from jupyter_server.base.handlers import APIHandler  # noqa: E402
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager  # noqa: E402
from tornado import web  # noqa: E402
from traitlets import Bool, Integer, List, Unicode  # noqa: E402
from voila.app import Voila  # noqa: E402
from voila.request_info_handler import RequestInfoSocketHandler  # noqa: E402
from voila.tornado.handler import TornadoVoilaHandler  # noqa: E402

#: A Jupyter data directory holding ``voila/templates/dnc``.
TEMPLATE_ROOT = Path(__file__).resolve().parent.parent / "app"
TEMPLATE = "dnc"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class AppKernelManager(AsyncMappingKernelManager):
    """Jupyter Server's kernel manager, plus culling of kernels whose page is gone."""

    cull_disconnected_timeout = Integer(
        120,
        config=True,
        help="Shut down a visitor's kernel once no page has been connected to it for this "
        "many seconds (0: never). Checked every cull_interval seconds, only when "
        "cull_idle_timeout > 0. Pooled (pre-heated) kernels are exempt.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._last_connected: dict[str, datetime] = {}

    async def shutdown_kernel(self, kernel_id, *args, **kwargs):
        self._last_connected.pop(kernel_id, None)
        return await ensure_async(super().shutdown_kernel(kernel_id, *args, **kwargs))

    async def cull_kernel_if_idle(self, kernel_id):
        # Voilà's pooled manager (a subclass) returns before calling this for pooled kernels,
        # so the clock of a kernel starts at the first check after it was handed out.
        if kernel_id not in self._kernels:
            return
        timeout = self.cull_disconnected_timeout
        if timeout > 0:
            now = _now()
            if self._kernel_connections.get(kernel_id, 0) > 0:
                self._last_connected[kernel_id] = now
            else:
                since = self._last_connected.setdefault(kernel_id, now)
                gone = (now - since).total_seconds()
                if gone > timeout:
                    self.log.warning(
                        "Culling kernel %s: no page connected for %d s", kernel_id, gone
                    )
                    await ensure_async(self.shutdown_kernel(kernel_id))
                    return
        await ensure_async(super().cull_kernel_if_idle(kernel_id))


def pooled_kernels(km) -> tuple[int, set[str], set[str]]:
    """(pool size asked for, ids of started pooled kernels, ids of warm ones).

    A pooled kernel is warm once it has run the notebook up to its ``wait_for_request()``
    cell: it then waits on Voilà's request-info websocket for a visitor.
    """
    pools = getattr(km, "_pools", None)
    if pools is None:
        return 0, set(), set()
    config = getattr(km, "kernel_pools_config", {}) or {}
    size = sum(int(config.get(nb, config.get("default", {})).get("pool_size", 0)) for nb in pools)
    started: set[str] = set()
    for pool in pools.values():
        for task in pool:
            if task.done() and not task.cancelled() and task.exception() is None:
                started.add(task.result()["kernel_id"])
    warm = {k for k in started if k in RequestInfoSocketHandler._waiters}
    return size, started, warm


class KernelListHandler(APIHandler):
    """``GET /api/kernels``: the running kernels (Jupyter Server's models + ``pooled``)."""

    @web.authenticated
    async def get(self):
        km = self.kernel_manager
        _, started, _ = pooled_kernels(km)
        models = []
        for kernel_id in list(km.list_kernel_ids()):
            try:
                model = await ensure_async(km.kernel_model(kernel_id))
            except (KeyError, web.HTTPError):  # shut down meanwhile
                continue
            model["pooled"] = kernel_id in started
            models.append(model)
        self.finish(json.dumps(models, default=str))


class StatusHandler(APIHandler):
    """``GET /api/status``: kernels running, and how many pre-heated ones are ready."""

    @web.authenticated
    async def get(self):
        km = self.kernel_manager
        size, started, warm = pooled_kernels(km)
        ids = list(km.list_kernel_ids())
        self.finish(
            json.dumps(
                {
                    "kernels": len(ids),
                    "visitors": len([k for k in ids if k not in started]),
                    "pool": {"size": size, "started": len(started), "warm": len(warm)},
                }
            )
        )


class DashboardPageHandler(TornadoVoilaHandler):
    """The dashboard page; also sets the ``_xsrf`` cookie its close beacon sends back."""

    async def get(self, path=None):
        self.xsrf_token  # noqa: B018 -- reading it sets the cookie (before the first flush)
        page = super().get(path)  # None when it redirected to the login page
        if page is not None:
            await page


class AppVoila(Voila):
    """Standalone Voilà with the checks and endpoints above."""

    allow_remote_access = Bool(
        False,
        config=True,
        help="Serve any Host header (a classroom on a LAN). Off: only loopback addresses "
        "and local_hostnames, which stops DNS-rebinding pages from reaching the app.",
    )
    local_hostnames = List(
        Unicode(),
        ["localhost"],
        config=True,
        help="Host names (besides loopback IP addresses) served when allow_remote_access is off.",
    )

    def initialize(self, argv=None):
        # Voilà finds templates in the Jupyter data directories: put ours first.
        existing = os.environ.get("JUPYTER_PATH", "").split(os.pathsep)
        paths = [str(TEMPLATE_ROOT), *filter(None, existing)]
        os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))
        super().initialize(argv)

    def init_settings(self):
        settings = super().init_settings()
        settings["allow_remote_access"] = self.allow_remote_access
        settings["local_hostnames"] = list(self.local_hostnames)
        return settings

    def init_handlers(self):
        handlers = []
        for pattern, handler, *rest in super().init_handlers():
            if handler is TornadoVoilaHandler:
                handler = DashboardPageHandler
            handlers.append((pattern, handler, *rest))
        base = self.server_url.rstrip("/")
        return [
            (base + "/api/kernels", KernelListHandler),
            (base + "/api/status", StatusHandler),
            *handlers,
        ]


main = AppVoila.launch_instance

if __name__ == "__main__":
    main()
