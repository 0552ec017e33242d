"""How long `keras-tl --help` and every subcommand's `--help` take (best of 5), and what reaches stderr.

    python bench/cli_startup.py

Prints one line per command and, last, `slowest_help_s=<x>` (goal: under 1 s).
"""

import subprocess
import sys
import time

from keras_tl.cli import _parser


def main():
    commands = [[]] + [[name] for name in _parser()._subparsers._group_actions[0].choices]
    slowest = 0.0
    for command in commands:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "keras_tl", *command, "--help"], capture_output=True,
                                    text=True)
            times.append(time.perf_counter() - started)
        best = min(times)
        slowest = max(slowest, best)
        print(f"keras-tl {' '.join(command + ['--help']):32s} {best:.3f} s  stderr lines: "
              f"{len(result.stderr.splitlines())}  exit {result.returncode}")
    print(f"slowest_help_s={slowest:.3f}")


if __name__ == "__main__":
    main()
