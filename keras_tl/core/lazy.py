"""Submodules as attributes of their package on first use (`keras_tl.image.data` after `import keras_tl`).

Packages import nothing at import time, so `keras-tl --help` and `import keras_tl` stay fast;
`package.submodule` still works as it would after an explicit import.
"""

import importlib
import pkgutil


def submodule_getattr(package_name, package_path):
    """A module `__getattr__` that imports `package_name.<name>` when `<name>` is one of its submodules."""
    names = {info.name for info in pkgutil.iter_modules(package_path)}

    def __getattr__(name):
        if name in names:
            return importlib.import_module(f"{package_name}.{name}")
        raise AttributeError(f"module {package_name!r} has no attribute {name!r}. Submodules: {sorted(names)}")

    return __getattr__
