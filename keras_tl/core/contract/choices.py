"""Every choice list keras-tl validates against, once: validation, `--help` and messages read them here.

Keras-free and import-free, so the CLI's `--help` starts at once.
"""

# The one registration line of a modality: each name is a package `keras_tl.<name>` with a `presets`
# module (its registry entries) and a `modality` module (its plug-in object).
MODALITIES = ("image", "text", "audio")
STRATEGIES = ("two_phase", "feature_extraction", "full")
PROBLEMS = ("auto", "multiclass", "binary", "multilabel", "multitask")
POOLINGS = ("avg", "max", "cls")
SCHEDULES = ("auto", "cosine", "linear", "plateau", "constant")
OPTIMIZERS = ("auto", "adam", "adamw")
MONITORS = ("val_loss", "val_accuracy")  # What "best epoch" means (weights kept, early stopping).
BALANCES = ("class_weights", "oversample", "none")
CACHES = ("memory", "disk", "none")
AUGMENT_LEVELS = ("none", "light", "standard", "strong")  # Each modality's presets fill in what each means.
AUGMENT_ON = ("data", "model")
DISTRIBUTIONS = ("none", "mirrored", "multi_worker", "data_parallel")
DOMAIN_ADAPTATIONS = ("auto", "none", "adabn", "coral", "dann", "prior")  # keras_tl.core.adapt.adaptation
DEFAULT_ADAPTATION = "prior"  # What "auto" means when target data is given (bench/domain_adaptation.py).
UNFREEZE_POLICIES = ("all", "top:N", "fraction:F", "blocks:K", "from:NAME")
EXPORT_FORMATS = ("keras", "saved_model", "tflite", "onnx")
QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
PRETRAINED = "pretrained"  # `weights`: the backbone's own pretrained weights (ImageNet, the preset's, aiSFX's).
FIND = "find"  # head_lr / fine_tune_lr: chosen by the learning-rate range test at the start of a run.
MAX_SEED = 2**32 - 1  # What NumPy and TensorFlow seed with.


def choices(values):
    """`a | b | c`: how `--help` and messages show a choice list."""
    return " | ".join(values)
