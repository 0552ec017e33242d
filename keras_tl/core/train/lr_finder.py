"""The learning-rate range test (Smith 2017; fastai's `lr_find`): one short run at exponentially
growing rates, the loss recorded at each, the rate where the loss falls fastest suggested.

`sweep` works on any compiled Keras model and dataset, so it serves the frozen phase (the head on
cached backbone features) and the unfrozen one alike; `keras_tl.lr_find` (workflow) builds those
from a config. The model's weights and optimizer are put back afterwards.
"""

import math

import keras
import numpy as np

from keras_tl.core.contract.errors import ConfigError
from keras_tl.core.utils import quiet


class _RangeTest(keras.callbacks.Callback):
    def __init__(self, rates, stop_factor):
        super().__init__()
        self.rates = rates
        self.stop_factor = stop_factor
        self.losses = []
        self._previous_mean = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(self.rates[batch])

    def on_train_batch_end(self, batch, logs=None):
        # Keras logs the running mean of the epoch's loss; one epoch spans the sweep, so each batch's
        # own loss is the difference of consecutive running sums.
        mean = float(logs["loss"])
        loss = mean * (batch + 1) - self._previous_mean * batch
        self._previous_mean = mean
        self.losses.append(loss)
        smoothed = smooth(self.losses)  # Compared smoothed, as fastai does: single batches are noisy.
        if not math.isfinite(loss) or (len(smoothed) > 5 and smoothed[-1] > self.stop_factor * smoothed.min()):
            self.model.stop_training = True  # Diverged: the rest of the sweep says nothing new.


def smooth(values, beta=0.9):
    """Bias-corrected exponential moving average (as fastai smooths the range test)."""
    out, average = [], 0.0
    for i, value in enumerate(values):
        average = beta * average + (1 - beta) * value
        out.append(average / (1 - beta ** (i + 1)))
    return np.asarray(out)


def suggest(rates, losses):
    """The rate where the smoothed loss falls fastest (per log-rate), before its minimum."""
    smoothed = smooth(losses)
    finite = np.isfinite(smoothed)
    rates, smoothed = np.asarray(rates)[finite], smoothed[finite]
    if len(smoothed) < 3:
        raise ConfigError(f"The learning-rate sweep diverged after {len(smoothed)} steps; lower `min_lr`.")
    end = int(np.argmin(smoothed)) + 1
    if end < 3:
        end = len(smoothed)
    slopes = np.gradient(smoothed[:end], np.log10(rates[:end]))
    return float(rates[int(np.argmin(slopes))])


def minimum_over_ten(rates, losses):
    """A tenth of the rate where the smoothed loss is lowest (fastai's `minimum` suggestion): the safer
    choice where the head is already trained and the loss starts low (phase 2), so its steepest fall
    is noise at the smallest rates."""
    smoothed = smooth(losses)
    finite = np.isfinite(smoothed)
    if finite.sum() < 3:
        raise ConfigError(f"The learning-rate sweep diverged after {int(finite.sum())} steps; lower `min_lr`.")
    return float(np.asarray(rates)[finite][int(np.argmin(smoothed[finite]))] / 10)


def sweep(model, dataset, *, min_lr=1e-7, max_lr=10.0, steps=100, stop_factor=4.0, verbose=None):
    """Trains `model` for `steps` batches at rates from `min_lr` to `max_lr` (log-spaced).

    Args:
        model: compiled keras.Model. Its weights and optimizer state are restored afterwards.
        dataset: tf.data.Dataset of `(inputs, targets)` batches (repeated here as needed).
        min_lr, max_lr: float. The range. Defaults to 1e-7 and 10.
        steps: int. Batches in the sweep. Defaults to 100.
        stop_factor: float. Stop once a batch's loss exceeds this times the lowest so far.

    Returns:
        dict with "rates" and "losses" (one per batch run), "smoothed" and "suggestion".
    """
    if not 0 < min_lr < max_lr:
        raise ConfigError(f"Expected 0 < min_lr < max_lr. Received: min_lr={min_lr}, max_lr={max_lr}")
    if steps < 10:
        raise ConfigError(f"`steps` must be at least 10. Received: steps={steps}")
    rates = list(np.geomspace(min_lr, max_lr, steps))
    weights = model.get_weights()
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    optimizer_state = [v.numpy() for v in optimizer.variables]
    test = _RangeTest(rates, stop_factor)
    model.fit(
        dataset.repeat(),
        steps_per_epoch=steps,
        epochs=1,
        callbacks=[test],
        verbose=quiet.fit_verbose() if verbose is None else verbose,
        shuffle=False,
    )
    model.set_weights(weights)
    for variable, value in zip(optimizer.variables, optimizer_state):
        variable.assign(value)
    rates = rates[: len(test.losses)]
    return {
        "rates": rates,
        "losses": test.losses,
        "smoothed": smooth(test.losses).tolist(),
        "suggestion": suggest(rates, test.losses),
    }
