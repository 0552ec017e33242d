"""Real image data that installed packages ship, for offline examples and tests."""

import numpy as np

from keras_tl.data import from_arrays


def load_digits(classes=None):
    """scikit-learn's handwritten digits (1,797 real 8x8 scans, 16 grey levels) as a source.

    Args:
        classes: list of int. Keep only these digits, relabelled 0..len-1 in the given order.
            Defaults to all ten.

    Returns:
        An `ImageSource` of uint8 RGB images `(N, 8, 8, 3)`; class names are the digits.

    Example:
    >>> source = keras_tl.datasets.load_digits(classes=[5, 6, 7, 8, 9])
    >>> source.class_names
    ['5', '6', '7', '8', '9']
    """
    from sklearn.datasets import load_digits as sklearn_digits  # Ships its data: no download.

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    targets = bunch.target
    classes = list(range(10)) if classes is None else list(classes)
    unknown = sorted(set(classes) - set(range(10)))
    if unknown or len(set(classes)) != len(classes):
        raise ValueError(f"`classes` must be distinct digits 0-9. Received: {classes}")
    keep = np.isin(targets, classes)
    remap = {digit: i for i, digit in enumerate(classes)}
    labels = np.asarray([remap[int(t)] for t in targets[keep]], dtype=np.int64)
    return from_arrays(images[keep], labels, [str(c) for c in classes])
