"""dnc-interactive: deep neural collapse in the deep unconstrained features model, live.

The public face of the library (the science: docs/theory.md)::

    from dnc_interactive import DUFMConfig, DUFM, Trainer, metrics, theory
    trainer = Trainer(DUFMConfig(depth=3)).run(tol=1e-3)
    trainer.history            # tidy DataFrame: step, layer, kind, metric, value
    theory.optimal_loss(trainer.config)
"""

from dnc_interactive import metrics, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM
from dnc_interactive.sweeps import sweep
from dnc_interactive.training import Recipe, Trainer, train

__all__ = ["DUFMConfig", "DUFM", "Trainer", "Recipe", "train", "metrics", "theory", "sweep"]
__version__ = "0.1.0"
