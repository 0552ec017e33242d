"""Keras layers of the shared core that ship inside saved models: `InferenceMode` (every transfer
model wraps its pretrained backbone in it) and `GradientReversal` (DANN's domain branch).

Registered as `keras_tl>...`. Like every module listed in `keras_tl.KERAS_OBJECT_MODULES`, it
imports only Keras and keras-free keras_tl modules at module level.
"""

import keras

from keras_tl.core.contract.errors import ConfigError


@keras.saving.register_keras_serializable(package="keras_tl")
class InferenceMode(keras.layers.Layer):
    """Runs a wrapped model in inference mode, whatever the `training` value of the outer call.

    The Keras guide calls a pretrained backbone with `base_model(x, training=False)`, but in Keras 3
    a functional model passes its own `training` value down to every node, overriding the nested
    `training=False` (keras-team/keras#20285): during `fit` the backbone's BatchNorm layers then
    normalize with batch statistics as soon as they are trainable, and its dropout and stochastic
    depth layers are active even while it is frozen. This layer's `call` takes no `training`
    argument, so the outer value never reaches the backbone; it always runs with `training=False`.

    Args:
        inner: keras.Model. The backbone.

    Example:
    >>> frozen = keras_tl.core.models.layers.InferenceMode(backbone, name="backbone")
    >>> features = frozen(images)  # BatchNorm and dropout in inference mode, even inside fit()
    """

    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner

    def build(self, input_shape):
        if not self.inner.built:
            self.inner.build(input_shape)
        self.built = True

    def call(self, inputs):
        return self.inner(inputs, training=False)

    def compute_output_shape(self, input_shape):
        return self.inner.compute_output_shape(input_shape)

    def get_config(self):
        return {**super().get_config(), "inner": keras.saving.serialize_keras_object(self.inner)}

    @classmethod
    def from_config(cls, config):
        inner = keras.saving.deserialize_keras_object(config.pop("inner"))
        return cls(inner, **config)


@keras.saving.register_keras_serializable(package="keras_tl")
class GradientReversal(keras.layers.Layer):
    """The identity forward; gradients times `-scale` backward (DANN's gradient-reversal layer).

    Written as `stop_gradient((1 + scale) x) - scale x`, so it works on every Keras backend.

    Args:
        scale: float >= 0. DANN's lambda. Change it during training with `layer.scale.assign(v)`
            (Ganin et al. ramp it from 0 to 1: `2 / (1 + exp(-10 p)) - 1` at training progress p).

    Example:
    >>> reversed_features = keras_tl.core.adapt.adaptation.GradientReversal(scale=0.3)(features)
    >>> domain = keras.layers.Dense(1, activation="sigmoid", name="domain")(reversed_features)
    """

    def __init__(self, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        if not scale >= 0:
            raise ConfigError(f"`scale` must be >= 0. Received: scale={scale!r}")
        self._initial_scale = float(scale)
        self.scale = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(float(scale)), trainable=False, name="scale"
        )

    def call(self, inputs):
        scale = keras.ops.cast(self.scale, inputs.dtype)
        return keras.ops.stop_gradient((1.0 + scale) * inputs) - scale * inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self._initial_scale}
