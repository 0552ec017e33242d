"""`keras-tl` command line: train, auto, compare, rank, domain-shift, lr-find, show-batch, evaluate, predict,
export, serving-config, backbones, assets, import-weights, quickstart.

Every flag and every config is checked before TensorFlow is imported, so a usage error answers at
once; only keras-tl's own errors (`keras_tl.core.contract.errors.KerasTLError`) become one-line messages
(exit 2: a request to change; exit 1: a run, an export or a server that failed), naming flags as
the command line spells them. Anything else is a bug and keeps its traceback.
"""

import errno
import os
import re
import sys

from keras_tl.cli import parser as cli_parser
from keras_tl.cli.parser import flag
from keras_tl.core.contract.errors import KerasTLError, RunExistsError


def main(argv=None):
    args = cli_parser.build().parse_args(argv)
    from keras_tl.core.utils import quiet

    quiet.lean_keras_import()
    if args.verbose:
        os.environ[quiet.VERBOSE_ENV] = "1"
    try:
        from keras_tl.cli.commands import run

        return run(args)
    except RunExistsError as error:
        if error.finished:  # Nothing to do: say so, as a success.
            print(f"keras-tl {args.command}: {cli_words(str(error))}")
            return 0
        return _fail(args, error, error.exit_code)
    except KerasTLError as error:
        return _fail(args, error, error.exit_code)
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM):
            raise
        return _fail(args, error, 1)  # The machine's limits, not a bug: one line, exit 1.
    except KeyboardInterrupt:
        print(f"\nkeras-tl {args.command}: interrupted", file=sys.stderr)
        return 130


def _fail(args, error, code):
    text = str(error) if not isinstance(error, OSError) else f"{error.strerror}: {error.filename!r}"
    print(f"keras-tl {args.command}: error: {cli_words(text)}", file=sys.stderr)
    return code


def cli_words(message):
    """A library message in the command line's words: keyword arguments named as flags
    (`head_lr` -> `--head-lr`, `head_lr=0.5` -> `--head-lr 0.5`, `overwrite=True` -> `--overwrite`)."""
    names = sorted(cli_parser.option_names(), key=len, reverse=True)
    pattern = "|".join(names)
    message = re.sub(r"(?<![\w-])overwrite=True( \(--overwrite\))?", "--overwrite", message)
    message = re.sub(rf"`({pattern})`", lambda m: f"`{flag(m.group(1))}`", message)
    switches = sorted((n for n in names if f"no_{n}" in names), key=len, reverse=True)  # `--x` / `--no-x` pairs
    if switches:  # `head_norm=True` -> `--head-norm`, `feature_cache=False` -> `--no-feature-cache`.
        message = re.sub(
            rf"(?<![\w.-])({'|'.join(switches)})=(True|False)\b",
            lambda m: flag(m.group(1)) if m.group(2) == "True" else "--no-" + flag(m.group(1))[2:],
            message,
        )
    return re.sub(rf"(?<![\w.-])({pattern})=", lambda m: f"{flag(m.group(1))} ", message)
