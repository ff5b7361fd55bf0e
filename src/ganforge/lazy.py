"""Import on first use, so that the command line and the registries load without torch.

``ganforge --help`` must answer in a blink; importing torch takes seconds. The
registries (``MODELS``, ``LOSSES``) and ``TrainConfig`` are plain data the
command line needs, so what they point at is imported only when it is used.
"""

import importlib
from types import ModuleType
from typing import Any


def import_object(path: str) -> Any:
    """'ganforge.models.dcgan:DCGANGenerator' -> the class, importing its module."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


class LazyModule:
    """A stand-in for a module that imports it on the first attribute read.

    Not registered in ``sys.modules``: it only defers the import for the module
    that holds it (``torch = LazyModule("torch")``); ``torch.zeros`` then works as usual.
    """

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"
