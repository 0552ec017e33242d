"""The public API as a user and a type checker meet it: every name `keras_tl` lists resolves, every
public function is annotated in full with names that resolve, and the wheel says so (`py.typed`)."""

import importlib
import inspect
import os
import re
import typing

import pytest

import keras_tl

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FUNCTIONS = sorted(name for name in keras_tl._PUBLIC if name[0].islower())


@pytest.mark.parametrize("name", sorted(keras_tl._PUBLIC))
def test_every_public_name_resolves(name):
    assert getattr(keras_tl, name) is not None


class _Names(dict):
    """The names an annotation may use: the function's module, then its `TYPE_CHECKING` imports
    (read from the module's source, imported here as a type checker would)."""

    def __init__(self, function):
        super().__init__(vars(inspect.getmodule(function)))
        source = inspect.getsource(inspect.getmodule(function))
        found = re.search(r"^if TYPE_CHECKING:\n(.*?)(?:\n\n\n|\Z)", source, re.M | re.S)  # A module-level block
        block = found.group(1) if found else ""
        exec(compile(inspect.cleandoc(block.replace("\n    ", "\n")), "<TYPE_CHECKING>", "exec"), self)


def _check_annotated(function, where):
    """Every parameter and the return annotated, with names that resolve as a type checker's would."""
    signature = inspect.signature(function)
    missing = [p for p, v in signature.parameters.items() if v.annotation is inspect.Parameter.empty]
    assert not missing, f"{where}: parameters without a type hint: {missing}"
    assert signature.return_annotation is not inspect.Signature.empty, f"{where}: no return type"
    hints = typing.get_type_hints(function, globalns=_Names(function))
    assert set(hints) == set(signature.parameters) | {"return"}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_functions_are_annotated_with_names_that_resolve(name):
    _check_annotated(inspect.unwrap(getattr(keras_tl, name)), f"keras_tl.{name}")


def test_the_annotation_check_can_fail():
    def unannotated(config, source=None) -> None:
        return None

    def no_return(config: int):
        return None

    def unresolvable(config: "NoSuchType") -> None:  # noqa: F821
        return None

    with pytest.raises(AssertionError, match="parameters without a type hint"):
        _check_annotated(unannotated, "unannotated")
    with pytest.raises(AssertionError, match="no return type"):
        _check_annotated(no_return, "no_return")
    with pytest.raises(NameError):
        _check_annotated(unresolvable, "unresolvable")


def test_the_wheel_ships_py_typed():
    assert os.path.isfile(os.path.join(ROOT, "keras_tl", "py.typed"))
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:  # tomllib is 3.11+
        section = f.read().split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^keras_tl = \[.*"py.typed".*\]', section, re.M), section
    assert os.path.isfile(os.path.join(os.path.dirname(importlib.import_module("keras_tl").__file__), "py.typed"))
