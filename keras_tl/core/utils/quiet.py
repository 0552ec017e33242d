"""The terminal is the user's: TensorFlow's native start-up lines stay out of it unless asked for.

`TF_CPP_MIN_LOG_LEVEL` does not silence the lines TensorFlow 2.21 writes while it loads (`port.cc`
oneDNN, `cudart_stub`, `cpu_feature_guard`), nor `cuInit` when it starts its devices, nor LiteRT's
"Created TensorFlow Lite XNNPACK delegate" or the converter's `fully_quantize` line: they go
straight to the process's file descriptor 2. So keras-tl points that descriptor at /dev/null:

- while TensorFlow is imported, when keras-tl is what imports it (`install_import_hook`, from
  `import keras_tl`; nothing is done when TensorFlow was imported first: the user's own choice);
- while it starts its devices (`start_tensorflow`, from the CLI and each public entry point, at the
  moment TensorFlow would start them anyway);
- while a LiteRT interpreter is created or the TFLite converter runs (`native_stderr_silenced`).

Python's own errors are printed after the descriptor is restored. `KERAS_TL_VERBOSE=1` (what
`keras-tl --verbose` sets) turns all of this off.
"""

import contextlib
import functools
import importlib.abc
import importlib.util
import os
import sys

VERBOSE_ENV = "KERAS_TL_VERBOSE"


def is_verbose():
    return os.environ.get(VERBOSE_ENV) == "1"


def is_quiet():
    return not is_verbose()


@contextlib.contextmanager
def native_stderr_silenced(enabled=True):
    """Points file descriptor 2, where native code writes, at /dev/null for the block.

    Descriptor 2 itself, not `sys.stderr.fileno()`: a Jupyter kernel reads descriptor 2 through a
    pipe into the cell's output and its `sys.stderr.fileno()` is a copy of the original terminal,
    so silencing that one let TensorFlow's lines into every notebook.
    """
    fd = 2
    try:
        os.fstat(fd) if enabled else None
    except OSError:
        enabled = False  # No descriptor 2 (a daemon): nothing to silence.
    if not enabled:
        yield
        return
    with contextlib.suppress(AttributeError, ValueError):
        sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def quietly():
    """`native_stderr_silenced` unless verbose: for the native calls known to print (converter, LiteRT)."""
    return native_stderr_silenced(is_quiet())


def interactive():
    """True when standard output is a terminal or a notebook: progress bars may redraw themselves.
    Otherwise (a log file, a pipe) Keras' bars would write ANSI escapes and carriage returns into it."""
    stdout = sys.stdout
    return "ipykernel" in sys.modules or bool(getattr(stdout, "isatty", lambda: False)())


def fit_verbose():
    """`verbose` for `fit`: the progress bar in a terminal or notebook, one plain line per epoch otherwise."""
    return 1 if interactive() else 2


def predict_verbose():
    """`verbose` for `predict`: the progress bar in a terminal or notebook, nothing otherwise."""
    return 1 if interactive() else 0


_started = False


def start_tensorflow(first=None):
    """Imports TensorFlow and starts its devices with their start-up lines silenced (unless verbose).

    Called where keras-tl is about to use TensorFlow anyway, so a user who configures devices
    (`tf.config.set_visible_devices`, memory growth) before calling keras-tl still can. `first`, a
    callable, runs before the devices start (what TensorFlow requires before any op, e.g. a
    multi-worker strategy).
    """
    global _started
    if _started or is_verbose():
        if first is not None:
            first()
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with native_stderr_silenced():
        import tensorflow as tf

        if first is not None:
            first()
        tf.config.list_logical_devices()  # Device start-up (cuInit on a CPU machine) logs here.
    tf.get_logger().setLevel("ERROR")  # Python-side retracing warnings.
    _started = True


def tensorflow_started(function):
    """Decorator of a public entry point: `start_tensorflow()` first."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start_tensorflow()
        return function(*args, **kwargs)

    return wrapper


class _Loader(importlib.abc.Loader):
    """Runs another loader's `exec_module` inside `around()`, then `after(module)`."""

    def __init__(self, inner, around, after=None, done=None):
        self.inner, self.around, self.after, self.done = inner, around, after, done

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        with self.around():
            self.inner.exec_module(module)
        if self.done is not None:
            self.done()
        module.__loader__ = self.inner  # What importlib.resources and reloads expect to find.
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        if self.after is not None:
            self.after(module)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class _OnImport(importlib.abc.MetaPathFinder):
    """The first import of module `name` runs inside each of `arounds` and is followed by each of `afters`."""

    def __init__(self, name):
        self.name, self.arounds, self.afters = name, [], []

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # So the lookup below finds the real spec.
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, self.around, self.after, done=self.remove)
        return spec

    @contextlib.contextmanager
    def around(self):
        with contextlib.ExitStack() as stack:
            for around in self.arounds:
                stack.enter_context(around())
            yield

    def after(self, module):
        for after in self.afters:
            after(module)

    def remove(self):
        """Gone once the module has imported: an import that failed half-way (TensorFlow tries `import
        keras` while it is itself half-imported, and catches the error) is watched again next time."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def on_import(name, around=None, after=None):
    """Arranges for `around()` to wrap, and `after(module)` to follow, the first import of `name`; when
    it is imported already, calls `after` now. Several calls for one module add up."""
    if name in sys.modules:
        if after is not None:
            after(sys.modules[name])
        return
    hook = next((f for f in sys.meta_path if isinstance(f, _OnImport) and f.name == name), None)
    if hook is None:
        hook = _OnImport(name)
        sys.meta_path.insert(0, hook)
    if around is not None and around not in hook.arounds:
        hook.arounds.append(around)
    if after is not None and after not in hook.afters:
        hook.afters.append(after)


# What Keras imports at start-up only for its own optional helpers (its scikit-learn wrappers, image
# gallery and bounding-box drawing, notebook file editor), none of which keras-tl uses: about 1 s of
# a command-line answer (scikit-learn with SciPy 0.4 s, matplotlib's pyplot 0.5 s).
KERAS_OPTIONAL_EXTRAS = ("sklearn", "matplotlib", "cv2", "IPython")


@contextlib.contextmanager
def _absent(names):
    """The modules `names` read as not installed for the block (each `import` raises ImportError), unless
    imported already; afterwards they import normally again."""
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def _without_keras_extras():
    return _absent(KERAS_OPTIONAL_EXTRAS)


def lean_keras_import():
    """For the command line's own process: Keras, when it is imported, skips its optional helpers
    (`KERAS_OPTIONAL_EXTRAS`); keras-tl imports matplotlib or scikit-learn itself when it plots or
    scores. Not done for the Python API, where a user may use those Keras helpers."""
    on_import("keras", around=_without_keras_extras)


def install_import_hook():
    """TensorFlow's import, when keras-tl triggers it, is silenced (see the module docstring)."""
    if is_quiet():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        on_import("tensorflow", around=native_stderr_silenced)
