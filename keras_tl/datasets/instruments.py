"""Instrument families rendered from General MIDI SoundFonts that Debian ships, through fluidsynth.

NSynth's 11 instrument families (Engel et al. 2017; "synth_lead" beside the ten acoustic ones) map
onto General MIDI programs (`FAMILY_PROGRAMS`). Each program plays `PITCHES_PER_PROGRAM` pitches over
its family's range (`FAMILY_RANGES`) at two velocities; each note is one clip of `CLIP_SECONDS`. The
SoundFonts are real sampled instruments from three independent-ish sources:

- FluidR3_GM (`fluid-soundfont-gm`, MIT),
- MuseScore_General (`musescore-general-soundfont`, MIT; built on FluidR3 for most programs),
- TimGM6mb (`timgm6mb-soundfont`, GPL-2; the independent one).

Rendering needs `fluidsynth` (Debian `fluidsynth`); it happens once per SoundFont, into a cache folder
that is written beside its destination and renamed into place (a killed render leaves nothing that
counts). A clip that renders silent (a program with no sample at that pitch) is skipped and listed in
the source's `skipped`.
"""

import fcntl
import glob
import json
import os
import shutil
import struct
import subprocess
import tempfile

import numpy as np

from keras_tl.core.contract.errors import DataError, DatasetUnavailableError

SOUNDFONTS = {
    "fluidr3": ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "fluid-soundfont-gm", "FluidR3_GM SoundFont: MIT"),
    "musescore": (
        "/usr/share/sounds/sf3/MuseScore_General.sf3",
        "musescore-general-soundfont",
        "MuseScore_General SoundFont: MIT",
    ),
    "timgm6mb": ("/usr/share/sounds/sf2/TimGM6mb.sf2", "timgm6mb-soundfont", "TimGM6mb SoundFont: GPL-2"),
}
# General MIDI programs (0-based) of each NSynth family. Left out: the ambiguous ones (accordion,
# harmonica, synth strings and pads, timpani, orchestra hit) and the sound effects.
FAMILY_PROGRAMS = {
    "keyboard": list(range(0, 8)),  # pianos, electric pianos, harpsichord, clavinet
    "mallet": list(range(8, 16)),  # celesta, glockenspiel, music box, vibraphone, marimba, xylophone, bells, dulcimer
    "organ": list(range(16, 21)),  # drawbar, percussive, rock, church, reed organ
    "guitar": list(range(24, 31)),  # nylon, steel, jazz, clean, muted, overdriven, distortion
    "bass": list(range(32, 40)),  # acoustic, finger, pick, fretless, slap x2, synth bass x2
    "string": [40, 41, 42, 43, 44, 45, 46, 48, 49],  # violin .. contrabass, tremolo, pizzicato, harp, ensembles
    "vocal": [52, 53, 54],  # choir aahs, voice oohs, synth voice
    "brass": list(range(56, 62)),  # trumpet, trombone, tuba, muted trumpet, French horn, brass section
    "reed": list(range(64, 72)),  # saxophones, oboe, English horn, bassoon, clarinet
    "flute": list(range(72, 80)),  # piccolo, flute, recorder, pan flute, bottle, shakuhachi, whistle, ocarina
    "synth_lead": list(range(80, 88)),  # square, saw, calliope, chiff, charang, voice, fifths, bass+lead
}
FAMILIES = tuple(FAMILY_PROGRAMS)
# MIDI note range each family plays (low, high), inclusive.
FAMILY_RANGES = {
    "keyboard": (36, 96),
    "mallet": (60, 96),
    "organ": (36, 84),
    "guitar": (40, 76),
    "bass": (28, 55),
    "string": (43, 79),
    "vocal": (48, 76),
    "brass": (40, 74),
    "reed": (46, 79),
    "flute": (60, 91),
    "synth_lead": (48, 84),
}
PITCHES_PER_PROGRAM = 8
VELOCITIES = (70, 110)
SAMPLE_RATE = 16000
CLIP_SECONDS = 1.0
GAP_SECONDS = 0.5  # Between notes: each clip's release tail stays out of the next.
SILENT_RMS = 1e-3  # Below this a clip is skipped as silent.
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".keras", "datasets", "gm_instruments")
PROTOCOLS = ("soundfonts", "programs")
RENDER_VERSION = 1  # Part of the cache folder's name: a change of plan renders again.


def notes():
    """`[(family, program, pitch, velocity)]` in rendering order (program by program)."""
    plan = []
    for family, programs in FAMILY_PROGRAMS.items():
        low, high = FAMILY_RANGES[family]
        pitches = np.unique(np.round(np.linspace(low, high, PITCHES_PER_PROGRAM)).astype(int))
        for program in programs:
            plan += [(family, program, int(p), v) for p in pitches for v in VELOCITIES]
    return plan


def midi_file(notes_played):
    """A Standard MIDI File (format 0) on channel 1: each `(program, pitch, velocity)` for `CLIP_SECONDS`,
    then `GAP_SECONDS` of silence; a program change where the program changes."""
    ticks_per_second = 960  # 480 ticks per beat at the default 120 beats per minute.
    on, gap = int(CLIP_SECONDS * ticks_per_second), int(GAP_SECONDS * ticks_per_second)
    events, program = bytearray(), None
    for i, (new_program, pitch, velocity) in enumerate(notes_played):
        delta = gap if i else 0
        if new_program != program:
            events += _vlq(delta) + bytes([0xC0, new_program])
            program, delta = new_program, 0
        events += _vlq(delta) + bytes([0x90, pitch, velocity])
        events += _vlq(on) + bytes([0x80, pitch, 0])
    events += _vlq(gap) + bytes([0xFF, 0x2F, 0x00])
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480)
    return header + b"MTrk" + struct.pack(">I", len(events)) + bytes(events)


def _vlq(value):
    """MIDI's variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def render(soundfont, cache_dir=CACHE_DIR):
    """Renders every clip of `notes()` with one SoundFont (a `SOUNDFONTS` key) into
    `<cache_dir>/<soundfont>_v<RENDER_VERSION>/` (once; later calls read it). Returns that folder, which
    holds `clips.json` (`[{file, family, program, pitch, velocity}]` of the clips kept, `skipped`: the
    silent ones) and one FLAC file per clip kept."""
    if soundfont not in SOUNDFONTS:
        raise DataError(f"`soundfont` must be one of {list(SOUNDFONTS)}. Received: soundfont={soundfont!r}")
    path, package, _ = SOUNDFONTS[soundfont]
    final = os.path.join(cache_dir, f"{soundfont}_v{RENDER_VERSION}")
    if os.path.isfile(os.path.join(final, "clips.json")):
        return final
    if not os.path.isfile(path):
        raise DatasetUnavailableError(
            f"The {soundfont} SoundFont is not installed ({path!r} does not exist). Install it with "
            f"`sudo apt-get install {package} fluidsynth` (Debian/Ubuntu)."
        )
    if shutil.which("fluidsynth") is None:
        raise DatasetUnavailableError(
            "Rendering the instrument clips needs the `fluidsynth` program, which is not installed. Install "
            "it with `sudo apt-get install fluidsynth` (Debian/Ubuntu)."
        )
    try:
        os.makedirs(cache_dir, exist_ok=True)
        lock = open(os.path.join(cache_dir, f".{soundfont}.lock"), "w")
    except OSError as error:
        raise DatasetUnavailableError(
            f"Cannot write the rendered clips into cache_dir={cache_dir!r}: {error.strerror}. Pass a writable "
            "folder as cache_dir."
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # One render per SoundFont at a time; the others then read it.
        if os.path.isfile(os.path.join(final, "clips.json")):
            return final
        for stale in glob.glob(os.path.join(cache_dir, f".{soundfont}_*")):  # A killed render's.
            shutil.rmtree(stale, ignore_errors=True)
        _render_into(final, path, soundfont, cache_dir)
    return final


def _render_into(final, path, soundfont, cache_dir):
    import soundfile

    tmp = tempfile.mkdtemp(prefix=f".{soundfont}_", dir=cache_dir)
    try:
        kept, skipped = [], []
        plan = notes()
        # One fluidsynth run for every note: loading a compressed .sf3 costs seconds each time.
        audio = _fluidsynth(path, midi_file([(p, n, v) for _, p, n, v in plan]), tmp)
        step = int(round((CLIP_SECONDS + GAP_SECONDS) * SAMPLE_RATE))
        length = int(round(CLIP_SECONDS * SAMPLE_RATE))
        for i, (family, program, pitch, velocity) in enumerate(plan):
            clip = audio[i * step : i * step + length]
            name = f"{family}/p{program:03d}_n{pitch:03d}_v{velocity:03d}.flac"
            entry = {"file": name, "family": family, "program": program, "pitch": pitch, "velocity": velocity}
            if len(clip) < length or float(np.sqrt(np.mean(clip**2))) < SILENT_RMS:
                skipped.append(entry)
                continue
            os.makedirs(os.path.join(tmp, family), exist_ok=True)
            soundfile.write(os.path.join(tmp, name), clip, SAMPLE_RATE, subtype="PCM_16")
            kept.append(entry)
        with open(os.path.join(tmp, "clips.json"), "w", encoding="utf-8") as f:
            json.dump({"soundfont": soundfont, "clips": kept, "skipped": skipped}, f)
        os.remove(os.path.join(tmp, "notes.mid"))
        os.chmod(tmp, 0o755)
        os.rename(tmp, final)  # Atomic: the folder is there whole or not at all.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fluidsynth(soundfont, midi, folder):
    """Mono float32 audio at `SAMPLE_RATE` of a MIDI file rendered with `soundfont` (no reverb or chorus)."""
    import soundfile

    midi_path, wav_path = os.path.join(folder, "notes.mid"), os.path.join(folder, "notes.wav")
    with open(midi_path, "wb") as f:
        f.write(midi)
    command = ["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.6", "-r", str(SAMPLE_RATE)]
    command += ["-T", "wav", "-F", wav_path, soundfont, midi_path]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 or not os.path.isfile(wav_path):
        raise DatasetUnavailableError(f"fluidsynth failed on {soundfont!r}: {(done.stderr or done.stdout)[-300:]}")
    audio, rate = soundfile.read(wav_path, dtype="float32", always_2d=True)
    os.remove(wav_path)
    if rate != SAMPLE_RATE:
        raise DatasetUnavailableError(f"fluidsynth rendered at {rate} Hz, not the {SAMPLE_RATE} Hz asked for.")
    return audio.mean(axis=1)


def load_gm_instruments(protocol="soundfonts", cache_dir=CACHE_DIR, families=FAMILIES):
    """Instrument-family clips (1 s, 16 kHz mono FLAC) rendered from General MIDI SoundFonts.

    Args:
        protocol: str. "soundfonts": train on FluidR3, validate on MuseScore_General, test on
            TimGM6mb (new instruments: another SoundFont's samples of the same programs).
            "programs": FluidR3 only; in each family the programs at positions 1, 5, 9, ... of
            `FAMILY_PROGRAMS` are validation and 2, 6, ... test, so every family has both (new
            instruments of a known SoundFont).
        cache_dir: str. Where the rendered clips are kept (rendered once per SoundFont, 3-6 s each on
            2 cores).
        families: the families to keep, in label order. Defaults to all 11.

    Returns:
        An audio `keras_tl.core.data.Source` with predefined train/val/test splits; `skipped` lists the
        silent clips left out; `licence` names each SoundFont's.

    Example:
    >>> source = keras_tl.datasets.load_gm_instruments()
    >>> source.class_names[:3]
    ['keyboard', 'mallet', 'organ']
    """
    from keras_tl.core.data import Source, predefined_indices

    if protocol not in PROTOCOLS:
        raise DataError(f"`protocol` must be one of {list(PROTOCOLS)}. Received: protocol={protocol!r}")
    if isinstance(families, str) or not isinstance(families, (list, tuple)):
        raise DataError(f"`families` must be a list of names from {list(FAMILIES)}. Received: families={families!r}")
    families = list(families)
    if not families or any(f not in FAMILIES for f in families) or len(set(families)) != len(families):
        raise DataError(f"`families` must be distinct names from {list(FAMILIES)}. Received: {families}")
    fonts = {"train": "fluidr3", "val": "musescore", "test": "timgm6mb"} if protocol == "soundfonts" else None
    rows, skipped = [], []
    for soundfont in sorted(set(fonts.values())) if fonts else ["fluidr3"]:
        folder = render(soundfont, cache_dir)
        with open(os.path.join(folder, "clips.json"), encoding="utf-8") as f:
            clips = json.load(f)
        for clip in clips["clips"]:
            if clip["family"] not in families:
                continue
            if fonts:
                split = next(s for s, font in fonts.items() if font == soundfont)
            else:
                order = FAMILY_PROGRAMS[clip["family"]].index(clip["program"])
                split = {1: "val", 2: "test"}.get(order % 4, "train")
            rows.append((os.path.join(folder, clip["file"]), families.index(clip["family"]), split))
        skipped += [
            (os.path.join(folder, c["file"]), "silent: no sample at this pitch")
            for c in clips["skipped"]
            if c["family"] in families
        ]
    paths, labels, splits = zip(*rows)
    used = sorted(set(fonts.values())) if fonts else ["fluidr3"]
    licence = "; ".join(SOUNDFONTS[s][2] for s in used) + "; rendered by keras-tl with fluidsynth"
    return Source(
        families, list(paths), np.asarray(labels, np.int64), "audio", predefined_indices(splits), skipped, licence
    )
