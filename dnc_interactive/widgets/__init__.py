"""Jupyter widgets: the live collapse dashboard and its building blocks.

``from dnc_interactive.widgets import Dashboard`` is the entry point (see
:class:`~dnc_interactive.widgets.dashboard.Dashboard`). The engine
(:class:`~dnc_interactive.widgets.session.TrainingSession`), the settings and their shareable
state string (:mod:`~dnc_interactive.widgets.state`), the presets and the streaming chart
widget (:class:`~dnc_interactive.widgets.live_chart.LiveChart`) are usable on their own.
This is the only package that knows ipywidgets.
"""

from dnc_interactive.widgets.dashboard import SNAPSHOTS, Dashboard
from dnc_interactive.widgets.live_chart import LiveChart, SeriesStore, javascript_bundle
from dnc_interactive.widgets.presets import PRESETS, Preset, get_preset
from dnc_interactive.widgets.session import TrainingSession
from dnc_interactive.widgets.state import SPEEDS, Settings, decode_state, encode_state

__all__ = [
    "PRESETS",
    "SNAPSHOTS",
    "SPEEDS",
    "Dashboard",
    "LiveChart",
    "Preset",
    "SeriesStore",
    "Settings",
    "TrainingSession",
    "decode_state",
    "encode_state",
    "get_preset",
    "javascript_bundle",
]
