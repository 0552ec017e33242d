"""keras-tl's messages: one logger, `keras_tl`, that a library user can silence or redirect.

By default its INFO messages go to standard output as `[keras-tl] ...` lines (what a command-line
or notebook user reads while a run trains). `logging.getLogger("keras_tl").setLevel("WARNING")`
silences them; adding handlers of your own (and `log.propagate = True`) redirects them. Keras'
own progress bars follow Keras (`verbose`, `keras.config.disable_interactive_logging()`).
"""

import logging
import sys

log = logging.getLogger("keras_tl")


class _Stdout(logging.StreamHandler):
    """A handler writing to whatever `sys.stdout` is at the time (a notebook's, a test's capture)."""

    def __init__(self):
        super().__init__(sys.stdout)

    def emit(self, record):
        self.stream = sys.stdout
        super().emit(record)


if not log.handlers:
    _handler = _Stdout()
    _handler.setFormatter(logging.Formatter("[keras-tl] %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)
    log.propagate = False
