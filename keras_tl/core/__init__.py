"""The shared machinery every modality uses, in layers that import only downward:

    utils <- contract <- data <- models <- train, evaluation, export <- adapt

`utils` (paths, network edge, quiet TensorFlow, logging, lazy imports), `contract` (errors, choices,
the config, the backbone registry, the modality plug-in contract), `data` (sources, splits, pipeline
pieces, multi-task labels), `models` (the Classifier, heads, layers, multi-task heads, optimizers,
schedules), `train`
(two-phase fine-tuning, callbacks, resume, the feature cache, the range test, distribution),
`evaluation` (metrics, plots, reports, LogME), `export` (formats, checks, LiteRT, TFLite metadata,
the TF Serving client), `adapt` (domain shift and adaptation). A modality (`keras_tl.image`, ...)
fills in only what differs; see docs/ARCHITECTURE.md.
"""

from keras_tl.core.utils.lazy import submodule_getattr

__getattr__ = submodule_getattr(__name__, __path__)
