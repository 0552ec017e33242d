"""Learning-rate schedules of one phase: warmup + cosine or linear decay, or a constant."""

import keras


def learning_rate(config, peak, total_steps, schedule=None):
    """The learning rate of one phase: warmup + cosine or linear decay, or a constant.

    Args:
        schedule: str. Overrides `config.schedule`; "auto" (unresolved) means "cosine", the image
            default (`fine_tune` resolves "auto" per modality before calling this).
    """
    schedule = schedule or config.schedule
    schedule = "cosine" if schedule == "auto" else schedule
    if schedule not in ("cosine", "linear") or total_steps < 2:
        return peak
    warmup = int(config.warmup_fraction * total_steps)
    if schedule == "linear":
        return WarmupLinearDecay(peak, warmup_steps=warmup, total_steps=total_steps)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 10 if warmup else peak,
        decay_steps=total_steps - warmup,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


@keras.saving.register_keras_serializable(package="keras_tl")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak` over `warmup_steps`, then linear decay to 0 at `total_steps`.

    The schedule BERT and its descendants were fine-tuned with.

    Example:
    >>> rate = keras_tl.core.models.schedules.WarmupLinearDecay(2e-5, warmup_steps=10, total_steps=100)
    >>> float(rate(5)), float(rate(10)), float(rate(55))
    (1e-05, 2e-05, 1e-05)
    """

    def __init__(self, peak, warmup_steps, total_steps):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warmup = keras.ops.maximum(float(self.warmup_steps), 1.0)
        rising = self.peak * step / warmup
        falling = self.peak * (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        rate = keras.ops.where(step < self.warmup_steps, rising, falling)
        return keras.ops.maximum(rate, 0.0)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}
