"""creditlab: learning rules beyond backpropagation, behind one API, one trainer, one benchmark table.

A learning rule writes an update direction into every trainable ``param.grad`` (descent
convention), so any ``torch.optim`` optimizer applies any rule.
"""

from creditlab.errors import (
    CreditlabError,
    DatasetError,
    DivergenceError,
    IncompatibleModelError,
    UnknownNameError,
)

__version__ = "0.1.0"

__all__ = [
    "CreditlabError",
    "DatasetError",
    "DivergenceError",
    "IncompatibleModelError",
    "UnknownNameError",
    "__version__",
]
