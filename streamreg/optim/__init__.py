"""Fitting: the optimizer selector, chunked optimisation with exact gradients, learning-rate schedules."""

from streamreg.optim.optimize import OptimizeLog, optimize
from streamreg.optim.schedules import format_and_check_learning_rates, learning_rate_at
from streamreg.optim.selector import OptimizerSelector, list_optimizers, register_optimizer, select_optimizer

__all__ = [
    "OptimizeLog",
    "OptimizerSelector",
    "format_and_check_learning_rates",
    "learning_rate_at",
    "list_optimizers",
    "optimize",
    "register_optimizer",
    "select_optimizer",
]
