"""dnc-interactive: deep neural collapse in the deep unconstrained features model, live."""

from dnc_interactive.config import DUFMConfig

__all__ = ["DUFMConfig"]
__version__ = "0.1.0"
