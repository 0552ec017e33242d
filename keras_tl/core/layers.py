"""The layer every transfer model wraps its pretrained backbone in (ships inside saved models).

Registered as `keras_tl>InferenceMode`, the name `.keras` files of earlier versions carry.
"""

import keras


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
    >>> frozen = keras_tl.core.layers.InferenceMode(backbone, name="backbone")
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
