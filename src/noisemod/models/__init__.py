"""The paper's model zoo: one registry (``MODELS``), one factory (``create_model``).

Every model takes image batches (B, C, H, W) with values in [0, 1] and holds the dataset's
normalization as its first module: a ``Classifier`` with ``.normalize`` and ``.net``, and
``model(x) == model.net(model.normalize(x))``. Registered: ``mlp``, ``fcnn``, ``lenet``,
``vgg11``, ``vgg16``, ``resnet18``; any torchvision classifier as ``"tv:<name>"``; any user
module through ``wrap_model``. See docs/models.md for the exact layers and parameter counts.
"""

from . import fcnn, lenet, mlp, resnet, vgg  # noqa: F401  (register the architectures)
from .classifier import Classifier, Normalize, wrap_model
from .registry import MODELS, create_model, list_models, register_model

__all__ = ["MODELS", "Classifier", "Normalize", "create_model", "list_models", "register_model", "wrap_model"]
