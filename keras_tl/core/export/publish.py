"""Putting an artifact in place so that no reader ever sees half of it or is locked out of it.

An export is written into a temporary entry beside its destination, named after the writing process
(`.tmp-<pid>-...`), checked, made readable by other users (a server in a container), then moved into
place with an atomic rename. Leftovers of a process that died mid-way are removed by the next export.
"""

import contextlib
import os
import re
import shutil
import tempfile
import time

from keras_tl.core.contract.errors import ConfigError


def next_version(model_dir):
    """1 + the largest integer version folder in `model_dir` (1 if none)."""
    if not os.path.isdir(model_dir):
        return 1
    return max((int(d) for d in os.listdir(model_dir) if d.isdigit()), default=0) + 1


def prune_versions(model_dir, keep):
    """Deletes all but the `keep` newest integer versions (`keep` >= 1, or None: none); returns the deleted ones."""
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise ConfigError(f"`keep_versions` must be an integer >= 1. Received: keep_versions={keep!r}")
    versions = sorted(int(d) for d in os.listdir(model_dir) if d.isdigit())
    doomed = versions[:-keep] if keep and len(versions) > keep else []
    for version in doomed:
        shutil.rmtree(os.path.join(model_dir, str(version)))
    return doomed


def write_labels(directory, class_names):
    with open(os.path.join(directory, "labels.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(class_names) + "\n")


def temporary(destination, suffix=""):
    """A temporary folder (or, with `suffix`, a file path) beside `destination`'s entries, named after this
    process (`.tmp-<pid>-...`) so that `remove_stale` can tell a dead export's leftovers."""
    if suffix:
        return os.path.join(destination, f".tmp-{os.getpid()}-{time.time_ns()}{suffix}")
    return tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=destination)


@contextlib.contextmanager
def staged(destination):
    """A temporary folder in `destination` (made, its dead exports' leftovers removed first) whose
    entries are published into `destination` when the block ends without an error: made readable by
    another user, each replacing its old copy atomically. The folder is removed either way."""
    os.makedirs(destination, exist_ok=True)
    remove_stale(destination)
    tmp = temporary(destination)
    try:
        yield tmp
        readable(tmp)
        replace_entries(tmp, destination)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale(destination):
    """Removes the temporary entries (`.tmp-<pid>-*`, `.old-*`) that an export killed mid-way left in
    `destination`: those whose process is gone. Returns their names."""
    removed = []
    for entry in os.listdir(destination) if os.path.isdir(destination) else []:
        match = re.match(r"\.(?:tmp|old)-(\d+)-", entry)
        if not match or _alive(int(match.group(1))):
            continue
        path = os.path.join(destination, entry)
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
        removed.append(entry)
    return removed


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # Someone else's live process.
        return True
    return True


def readable(path):
    """Makes an artifact readable by a server running as another user (TF Serving in a container), as
    the umask allows: a temporary folder is created 0700, which would keep it out."""
    mask = os.umask(0)
    os.umask(mask)
    if os.path.isfile(path):
        os.chmod(path, 0o666 & ~mask)
        return
    for folder, _, files in os.walk(path):
        os.chmod(folder, 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o666 & ~mask)


def replace_entries(tmp, destination):
    """Moves every entry of `tmp` into `destination`, each replacing its old copy atomically."""
    for entry in os.listdir(tmp):
        final = os.path.join(destination, entry)
        if os.path.isdir(final):
            old = tempfile.mkdtemp(prefix=f".old-{os.getpid()}-", dir=destination)
            os.rename(final, os.path.join(old, entry))
            os.rename(os.path.join(tmp, entry), final)
            shutil.rmtree(old)
        else:
            os.replace(os.path.join(tmp, entry), final)


def dir_size(path):
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)
