"""Plain gradient descent (batch, stochastic or mini-batch: the caller's batch size decides)."""
from fnn.optim.base import Optimizer, ScalarOrSchedule, scale_by_learning_rate


def sgd(learning_rate: ScalarOrSchedule) -> Optimizer:
    """Gradient descent: ``θ ← θ − η ∇J(θ)``; ``η`` may be a schedule of the step count."""
    return scale_by_learning_rate(learning_rate)
