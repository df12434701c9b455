"""Optimizers: hand-written ``init``/``update`` pairs over pytrees (no optax).

- ``base``: the protocol (``Optimizer``, ``chain``, ``apply_updates``, ``scale_by_learning_rate``)
  and the state readers ``step_count`` / ``learning_rate``.
- ``rules``: the ``scale_by_*`` pieces (momentum, Adagrad, Adadelta, RMSprop, Adam, ...).
- ``aliases``: the user-facing optimizers (``sgd``, ``adam``, ...) and ``get(name)`` for configs.
- ``transforms``: clipping, weight decay, gradient accumulation, freezing, masking (masks as in
  ``fnn.param_masks``), negation (``maximize``), bold driver, reduce-on-plateau.
- ``schedules``: learning-rate schedules.
"""
from fnn.optim import aliases, base, rules, schedules, transforms
from fnn.optim.aliases import *  # noqa: F401,F403
from fnn.optim.base import *  # noqa: F401,F403
from fnn.optim.rules import *  # noqa: F401,F403
from fnn.optim.schedules import *  # noqa: F401,F403
from fnn.optim.transforms import *  # noqa: F401,F403

__all__ = list(dict.fromkeys(
    base.__all__ + rules.__all__ + aliases.__all__ + transforms.__all__ + schedules.__all__))
