"""A package's submodules and names as its attributes on first use, so that importing a package
imports nothing heavy (`keras-tl --help` and `import keras_tl` stay fast).

`keras_tl.core.models.heads` works after `import keras_tl`, and `from keras_tl.core.data import
Split` imports only the submodule that defines `Split`.
"""

import importlib
import pkgutil


def lazy_names(package_name, package_path, names=None):
    """`(__getattr__, __dir__)` for a package: its submodules, and `names` `{submodule: (name, ...)}`
    re-exported from them, each imported when first asked for."""
    submodules = {info.name for info in pkgutil.iter_modules(package_path) if not info.name.startswith("_")}
    owner = {name: module for module, exported in (names or {}).items() for name in exported}

    def __getattr__(name):
        if name in owner:
            return getattr(importlib.import_module(f"{package_name}.{owner[name]}"), name)
        if name in submodules:
            return importlib.import_module(f"{package_name}.{name}")
        raise AttributeError(f"module {package_name!r} has no attribute {name!r}. Submodules: {sorted(submodules)}")

    def __dir__():
        return sorted(submodules | set(owner))

    return __getattr__, __dir__


def submodule_getattr(package_name, package_path):
    """A module `__getattr__` that imports `package_name.<name>` when `<name>` is one of its submodules."""
    return lazy_names(package_name, package_path)[0]
