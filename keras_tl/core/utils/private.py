"""Every private API of another library that keras-tl relies on, in one place, each with why no public
one does; `tests/test_architecture.py` checks that no other module touches a private name.

A library update that moves one of these fails here, in one small function, and in the tests that
cover its caller (named below).
"""


def nested_layers(model, include_self=False):
    """Every layer inside `model`, nested models' layers included (Keras' `_flatten_layers`).

    `Model.layers` lists only the top level; AdaBN and the from-scratch BatchNorm momentum must reach
    every BatchNormalization inside a backbone (tests/test_adaptation.py, tests/test_training.py).
    """
    return list(model._flatten_layers(include_self=include_self))


def output_tensor_order(interpreter):
    """`{signature: {"outputs": {name: tensor index}}}` of a LiteRT interpreter (`_get_full_signature_list`).

    The public `get_signature_list()` gives the output names without their tensor indices, which a
    multi-head file needs to read its outputs in the Keras model's order (tests/test_multitask.py).
    """
    return interpreter._get_full_signature_list()


def subcommand_parsers(parser):
    """The sub-parsers of an argparse parser with subcommands (`_actions`, `_SubParsersAction`).

    argparse has no public way to list a parser's options; the CLI reads them to name flags in its
    messages (tests/test_cli.py).
    """
    import argparse

    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices.values()


def option_strings(parser):
    """Every option string of an argparse parser (`_actions`)."""
    return [option for action in parser._actions for option in action.option_strings]
