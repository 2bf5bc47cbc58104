"""dnc-interactive: deep neural collapse in the deep unconstrained features model, live.

The public face of the library (the science: docs/theory.md)::

    from dnc_interactive import DUFMConfig, DUFM, Trainer, metrics, theory
    trainer = Trainer(DUFMConfig(depth=3)).run(tol=1e-3)
    trainer.history            # tidy DataFrame: step, layer, kind, metric, value
    theory.optimal_loss(trainer.config)

The names are imported on first use (PEP 562), so ``import dnc_interactive`` and the
command line's argument parsing do not import torch or pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dnc_interactive import metrics, theory
    from dnc_interactive.config import DUFMConfig
    from dnc_interactive.model import DUFM
    from dnc_interactive.monitor import monitor
    from dnc_interactive.sweeps import sweep
    from dnc_interactive.training import Recipe, Trainer, train
    from dnc_interactive.verify import verify

# public name -> (module, attribute; None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "DUFMConfig": ("dnc_interactive.config", "DUFMConfig"),
    "DUFM": ("dnc_interactive.model", "DUFM"),
    "Trainer": ("dnc_interactive.training", "Trainer"),
    "Recipe": ("dnc_interactive.training", "Recipe"),
    "train": ("dnc_interactive.training", "train"),
    "metrics": ("dnc_interactive.metrics", None),
    "theory": ("dnc_interactive.theory", None),
    "sweep": ("dnc_interactive.sweeps", "sweep"),
    "monitor": ("dnc_interactive.monitor", "monitor"),
    "verify": ("dnc_interactive.verify", None),  # a callable module: verify(quick=True, ...)
}

__all__ = [
    "DUFMConfig",
    "DUFM",
    "Trainer",
    "Recipe",
    "train",
    "metrics",
    "theory",
    "sweep",
    "monitor",
    "verify",
]
__version__ = "0.2.0.dev0"


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
