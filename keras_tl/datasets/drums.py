"""Real drum one-shots that Debian packages ship: Hydrogen's kits (train/val/test), LMMS's and Sonic Pi's samples."""

import os

import numpy as np

from keras_tl.core.contract.errors import DataError, DatasetUnavailableError

DRUMKITS_DIR = "/usr/share/hydrogen/data/drumkits"
DRUMKITS_LICENCE = (
    "Hydrogen drum kits (Debian hydrogen-drumkits): per kit GPL, CC0, CC BY 3.0 or CC BY-SA 3.0 "
    "(each kit's drumkit.xml)"
)
DRUM_CLASSES = ("kick", "snare", "tom", "hihat", "cymbal")
# The instrument names the kits' drumkit.xml give, matched in this order (first match wins).
DRUM_RULES = (
    ("hihat", r"hi-?hat|\bhh\b|\bhat\b"),
    ("cymbal", r"crash|ride|cymbal|splash|china"),
    ("clap", r"clap"),
    ("kick", r"kick|bass ?drum"),
    ("snare", r"snare"),
    ("tom", r"\btom"),
)
# Held-out kits, so that the velocity layers of one drum never straddle train and test.
DRUM_TEST_KITS = ("The Black Pearl 1.0",)
DRUM_VAL_KITS = ("Millo_MultiLayered3",)


LMMS_DRUMS_DIR = "/usr/share/lmms/samples/drums"
LMMS_LICENCE = "LMMS drum samples (Debian lmms-common): GPL-2+"
SONIC_PI_SAMPLES_DIR = "/usr/share/sonic-pi/samples"
SONIC_PI_LICENCE = "Sonic Pi samples (Debian sonic-pi-samples): CC0, from freesound.org"
# Sonic Pi's one-shot drums by class (its samples/README.md names each file's freesound.org source).
SONIC_PI_DRUMS = {
    "kick": "bd_808 bd_ada bd_boom bd_fat bd_gas bd_haus bd_klub bd_mehackit bd_pure bd_sone bd_tek bd_zome bd_zum "
    "drum_bass_hard drum_bass_soft drum_heavy_kick elec_hollow_kick elec_soft_kick",
    "snare": "sn_dolf sn_dub sn_generic sn_zome drum_snare_hard drum_snare_soft elec_snare elec_lo_snare "
    "elec_mid_snare elec_hi_snare elec_filt_snare",
    "tom": "drum_tom_hi_hard drum_tom_hi_soft drum_tom_mid_hard drum_tom_mid_soft drum_tom_lo_hard drum_tom_lo_soft "
    "elec_fuzz_tom",
    "hihat": "drum_cymbal_closed drum_cymbal_open drum_cymbal_pedal",
    "cymbal": "drum_cymbal_hard drum_cymbal_soft drum_splash_hard drum_splash_soft elec_cymbal",
    "other": "drum_cowbell elec_triangle elec_wood elec_bell elec_chime elec_bong elec_tick elec_ping elec_beep "
    "elec_blip elec_blip2 elec_blup elec_flip elec_plip elec_pop elec_twang elec_twip",
}


def _require_folder(folder, what, package, instead):
    if not os.path.isdir(folder):
        raise DatasetUnavailableError(
            f"{what} are not installed ({folder!r} does not exist). Install them with "
            f"`sudo apt-get install {package}` (Debian/Ubuntu), or pass folder= {instead}."
        )


def _drum_classes(classes):
    known = ("kick", "snare", "tom", "hihat", "cymbal", "clap", "other")
    classes = list(classes)
    if not classes or any(c not in known for c in classes) or len(set(classes)) != len(classes):
        raise DataError(f"`classes` must be distinct names from {list(known)}. Received: {classes}")
    return classes


def drum_class(instrument):
    """ "kick", "snare", "tom", "hihat", "cymbal", "clap" or "other" for a kit's instrument name."""
    import re

    name = (instrument or "").lower()
    return next((label for label, pattern in DRUM_RULES if re.search(pattern, name)), "other")


def load_drumkits(classes=DRUM_CLASSES, folder=DRUMKITS_DIR):
    """Real drum one-shots from Hydrogen's drum kits (Debian `hydrogen-drumkits`), labelled by instrument.

    Each kit's `drumkit.xml` names its instruments and their sample files (velocity layers); the
    instrument name gives the class (`drum_class`). Splits are by kit: "The Black Pearl 1.0" is the
    test kit and "Millo_MultiLayered3" the validation kit, the 12 others train, so no drum's layers
    are on both sides. WAV, FLAC and AIFF at 22.05 / 44.1 / 48 kHz, mono and stereo.

    Args:
        classes: list of str. Classes to keep, in label order: any of "kick", "snare", "tom",
            "hihat", "cymbal", "clap", "other". Defaults to the five drums.
        folder: str. Where the kits are. Defaults to Debian's location.

    Returns:
        An audio `keras_tl.core.data.Source` with predefined train/val/test splits.

    Example:
    >>> source = keras_tl.datasets.load_drumkits()
    >>> source.class_names
    ['kick', 'snare', 'tom', 'hihat', 'cymbal']
    """
    import xml.etree.ElementTree as ElementTree

    classes = _drum_classes(classes)
    _require_folder(folder, "Hydrogen's drum kits", "hydrogen-drumkits", "a copy of the kits")

    def samples():  # (path, class, split) of each sample of `classes` the kits' XML files name, once each
        for kit in sorted(os.listdir(folder)):
            xml = os.path.join(folder, kit, "drumkit.xml")
            if not os.path.isfile(xml):
                continue
            root = ElementTree.parse(xml).getroot()
            ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
            split = "test" if kit in DRUM_TEST_KITS else "val" if kit in DRUM_VAL_KITS else "train"
            seen = set()
            for instrument in root.iter(f"{ns}instrument"):
                label = drum_class(instrument.findtext(f"{ns}name"))
                for element in instrument.iter(f"{ns}filename"):
                    path = os.path.join(folder, kit, element.text or "")
                    if path not in seen and label in classes:
                        seen.add(path)
                        yield path, label, split

    return _collect(samples(), classes, folder, DRUMKITS_LICENCE)


def load_lmms_drums(classes=DRUM_CLASSES, folder=LMMS_DRUMS_DIR):
    """Drum one-shots of another source: LMMS's sample library (Debian `lmms-common`), labelled by file name.

    A second test set for models trained on `load_drumkits`: other drums, other rooms, other
    processing (electronic and acoustic). Each OGG file's name gives its class by the same rules
    as the kits' instrument names (`drum_class`: "bassdrum02" and "kick_hard01" are kicks,
    "hihat_opened01" a hi-hat, "crash01" and "ride02" cymbals); files of other classes (rim,
    shaker, zap, ...) are left out. With the five drums: 16 kicks, 17 snares, 8 toms, 9 hi-hats,
    4 cymbals (54 files; `kick04.ogg`, a malformed WAV file named .ogg, is skipped and listed in
    `skipped`). No predefined splits: it is all test data.

    Args:
        classes: list of str. Classes to keep, in label order (as `load_drumkits`).
        folder: str. Where the samples are. Defaults to Debian's location.

    Returns:
        A audio `keras_tl.core.data.Source`.

    Example:
    >>> keras_tl.datasets.load_lmms_drums().class_names
    ['kick', 'snare', 'tom', 'hihat', 'cymbal']
    """
    return _one_shots(
        classes,
        folder,
        None,
        lambda name: drum_class(os.path.splitext(name)[0].replace("_", " ")),
        ("LMMS's drum samples", "lmms-common", "a folder of its samples/drums"),
        LMMS_LICENCE,
    )


def load_sonic_pi_drums(classes=DRUM_CLASSES, folder=SONIC_PI_SAMPLES_DIR):
    """Drum one-shots of a third source: Sonic Pi's samples (Debian `sonic-pi-samples`; CC0, from freesound.org).

    Another test set beside `load_lmms_drums`, for models trained on `load_drumkits`. Sonic Pi's
    names are not instrument names ("bd_haus", "drum_cymbal_closed" is a closed hi-hat), so an
    explicit table (`SONIC_PI_DRUMS`) gives each one-shot of its drum, bass-drum, snare and electronic
    families its class: 18 kicks, 11 snares, 7 toms, 3 hi-hats, 5 cymbals (44 files) and 17
    "other" (cowbell and electronic blips); drum_roll and the loops are left out. A listed file that
    is missing or bad is skipped and listed in `skipped`. No predefined splits: it is all test data.

    Args:
        classes: list of str. Classes to keep, in label order (as `load_drumkits`; "clap" has no files).
        folder: str. A folder holding Sonic Pi's .flac samples. Defaults to Debian's.

    Returns:
        A audio `keras_tl.core.data.Source` of test files, with no predefined splits.

    Example:
    >>> keras_tl.datasets.load_sonic_pi_drums().class_names
    ['kick', 'snare', 'tom', 'hihat', 'cymbal']
    """
    table = {f"{stem}.flac": label for label, stems in SONIC_PI_DRUMS.items() for stem in stems.split()}
    return _one_shots(
        classes,
        folder,
        sorted(table),
        table.get,
        ("Sonic Pi's samples", "sonic-pi-samples", "a folder of its .flac samples"),
        SONIC_PI_LICENCE,
    )


def _one_shots(classes, folder, names, label_of, package, licence):
    """An audio source of the files `names` in `folder` (None: all it holds) that `label_of(name)` puts in `classes`.

    `package` is `(what, Debian package, what else to pass as folder)` for the error when `folder` is missing.
    """
    classes = _drum_classes(classes)
    _require_folder(folder, *package)
    names = sorted(os.listdir(folder)) if names is None else names
    return _collect(((os.path.join(folder, name), label_of(name), None) for name in names), classes, folder, licence)


def _collect(samples, classes, folder, licence):
    """An audio source of the `(path, class, split or None)` samples of `classes`; a missing or bad file
    is skipped and reported in `skipped`. Splits become predefined splits when any sample has one."""
    from keras_tl.audio.data import check_audio_file
    from keras_tl.core.data import Source, predefined_indices

    paths, labels, splits, skipped = [], [], [], []
    for path, label, split in samples:
        if label not in classes:
            continue
        reason = check_audio_file(path) if os.path.isfile(path) else "file not found"
        if reason:
            skipped.append((path, reason))
            continue
        paths.append(path)
        labels.append(classes.index(label))
        splits.append(split)
    if not paths:
        raise DatasetUnavailableError(f"No drum samples of classes {classes} found under {folder!r}.")
    predefined = predefined_indices(splits) if any(splits) else None
    return Source(classes, paths, np.asarray(labels, np.int64), "audio", predefined, skipped, licence)
