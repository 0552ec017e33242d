"""The callbacks of a phase: early stopping, best weights over all phases, CSV logs, TensorBoard."""

import os

import keras


def make_callbacks(config, run_dir, phase, checkpoint=None):
    """Early stopping (restores best), best checkpoint, CSV log, optional plateau and TensorBoard."""
    callbacks = []
    if config.early_stopping_patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
            )
        )
    if config.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=2))
    if run_dir:
        if checkpoint is not None:
            callbacks.append(checkpoint)
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(run_dir, f"history_{phase}.csv")))
        if config.tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard", phase)))
    return callbacks


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of `target` from its best epoch (lowest validation loss) over all phases.

    One instance spans all phases, whichever model is being fit (in a feature-cached phase 1 it
    is the head alone, but `target` is the whole model). The best weights are held in memory and
    written to `filepath` at the end of each phase in which they improved, not every epoch
    (a 2M-parameter model's file costs ~0.3 s to write, more than a cached-features epoch).

    Args:
        filepath: str. A `.weights.h5` file.
        target: keras.Model. The model whose weights are kept.
    """

    def __init__(self, filepath, target):
        super().__init__()
        self.filepath = filepath
        self.target = target
        self.best = float("inf")
        self._weights = None
        self._dirty = False

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_loss")
        if value is not None and value < self.best:
            self.best = float(value)
            self._weights = self.target.get_weights()
            self._dirty = True

    def on_train_end(self, logs=None):
        if self._dirty:
            current = self.target.get_weights()
            self.target.set_weights(self._weights)
            self.target.save_weights(self.filepath)
            self.target.set_weights(current)
            self._dirty = False

    def restore(self):
        """Sets the target to its best weights, if any epoch was validated."""
        if self._weights is not None:
            self.target.set_weights(self._weights)
