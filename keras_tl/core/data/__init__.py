"""What every modality's data shares: `Source` and its readers (`sources`), seeded stratified splits and
class weights (`splits`), and the pieces of every tf.data pipeline (`pipelines`).

Names load on first use (`from keras_tl.core.data import Split`), so the keras-free modules stay so.
"""

from keras_tl.core.utils.lazy import lazy_names

__getattr__, __dir__ = lazy_names(
    __name__,
    __path__,
    {
        "sources": (
            "Source",
            "csv_reader",
            "predefined_indices",
            "read_manifest",
            "scan_class_folders",
            "tfds_builder",
            "CSV_FIELD_LIMIT",
        ),
        "splits": ("SPLITS", "Split", "class_weights", "limit_per_class", "split_source", "strata", "stratified_split"),
        "pipelines": (
            "encode_labels",
            "feature_dataset",
            "labelled_batches",
            "labels_of_targets",
            "shuffled_batches",
            "steps_per_epoch",
            "targets_as_inputs",
        ),
    },
)
