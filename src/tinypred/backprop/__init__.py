"""Backprop you can read: a reverse-mode autodiff engine on NumPy (``engine``, with ``nn``, ``optim``,
``losses`` and ``gradcheck`` on top), the same gradients derived by hand as forward/backward blocks
(``handgrad``), the stable forward helpers both share (``numerics``), and the battery that checks every op
and block against central differences and torch autograd (``battery``). The subpackage is self-contained:
it imports NumPy and nothing of the rest of tinypred; torch only in ``battery``, so importing the engine
never loads torch. The engine never imports ``handgrad``: the two derivations stay independent.
Derivations: docs/derivations.md.
"""

from tinypred.backprop.engine import Tensor, make_op, no_grad
from tinypred.backprop.gradcheck import GradcheckResult, compare_gradients, gradcheck, numeric_gradient
from tinypred.backprop.losses import huber, split_modes, wta_loss
from tinypred.backprop.nn import MLP, Linear, Module
from tinypred.backprop.optim import SGD, Adam, AdamW

__all__ = [
    "MLP",
    "SGD",
    "Adam",
    "AdamW",
    "GradcheckResult",
    "Linear",
    "Module",
    "Tensor",
    "compare_gradients",
    "gradcheck",
    "huber",
    "make_op",
    "no_grad",
    "numeric_gradient",
    "split_modes",
    "wta_loss",
]
