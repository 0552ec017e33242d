"""The whole-run functions: `train`, `compare_backbones`, `rank`, `domain_shift`, `lr_find`, `show_batch`, and what is
done with a finished run (`evaluate_run`, `predict`, `export_run`, `load_run`). Modality-agnostic."""

from keras_tl.core.run import RunResult, load_split  # noqa: F401
from keras_tl.workflow.compare import compare_backbones  # noqa: F401
from keras_tl.workflow.rate_finder import lr_find  # noqa: F401
from keras_tl.workflow.ranking import domain_shift, rank  # noqa: F401
from keras_tl.workflow.runs import (check_export_name, evaluate_run, export_run, load_run, predict,  # noqa: F401
                                    predict_files, save_backbone_weights)
from keras_tl.workflow.training_run import check_config, resolve_task, show_batch, train  # noqa: F401
