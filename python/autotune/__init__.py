"""AutoTune's curriculum service from Python.

- :class:`autotune.client.AutoTuneClient`: the HTTP client (standard library only).
- :mod:`autotune.trl`: TRL's GRPOTrainer with the service choosing the prompts
  (:class:`~autotune.trl.AutoTuneSampler`, :class:`~autotune.trl.OutcomeReporter`,
  :func:`~autotune.trl.grpo_trainer_class`).

Install with ``pip install ./python`` from the repository (``./python[trl]`` for TRL).
"""

from .client import AutoTuneClient, AutoTuneError

__all__ = ["AutoTuneClient", "AutoTuneError"]
__version__ = "0.1.0"
