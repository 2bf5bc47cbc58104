"""Optional integrations with training frameworks.

* :mod:`.lightning`: :class:`~dnc_interactive.integrations.lightning.DNCMonitor`, a PyTorch
  Lightning callback around :func:`dnc_interactive.monitor` (needs ``pip install
  "dnc-interactive[lightning]"``; importing this package does not import Lightning).
"""
