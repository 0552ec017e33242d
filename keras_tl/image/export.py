"""The image modality's export pieces: TF Serving signatures that take encoded bytes or images."""

import numpy as np
import tensorflow as tf

from keras_tl._vendor import tflite_metadata_schema as fb
from keras_tl.core.export import tflite_metadata
from keras_tl.core.models.heads import probabilities_graph, problem_of, serving_outputs
from keras_tl.image.data import resize_image


def image_size_of(model):
    """The side of a model's square image input."""
    return int(model.input_shape[1])


def serving_endpoints(classifier, class_names, top_k=5):
    """`{name: (tf.function, description)}`: "serving_default" takes encoded image bytes,
    "serving_images" a float image tensor.

    Both return `probabilities` (N, C) float32, `top_classes` (N, k) int32 and `labels` (N,)
    string of the top class. Decoding (JPEG, PNG, GIF, BMP), resizing and the backbone's
    preprocessing all happen in the graph.
    """
    model = classifier.model
    size = image_size_of(model)

    def outputs(images):
        return serving_outputs(
            probabilities_graph(model(images, training=False)),
            class_names,
            problem_of(model),
            top_k,
            classifier.operating_point,
        )

    def decode(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False, dtype=tf.uint8)
        image.set_shape([None, None, 3])
        image = resize_image(image, size)  # As in training (`keras_tl.image.data.RESIZE`).
        return tf.clip_by_value(tf.round(image), 0.0, 255.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(image_bytes):
        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
        return outputs(images)

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])
    def serve_images(images):
        return outputs(images)

    return {
        "serving_default": (serve_bytes, "image_bytes: string [N] (JPEG/PNG/GIF/BMP)"),
        "serving_images": (serve_images, f"images: float32 [N, {size}, {size}, 3] in 0-255"),
    }


def encode_png(images):
    return [tf.io.encode_png(image).numpy() for image in np.asarray(images, dtype=np.uint8)]


def endpoint_arguments(images):
    """The arguments that call each serving signature on uint8 `images`."""
    return {
        "serving_images": {"images": tf.constant(images, tf.float32)},
        "serving_default": {"image_bytes": tf.constant(encode_png(images))},
    }


def tflite_input(size, *, quantized=False):
    """An RGB image input `[1, size, size, 3]` of raw 0-255 values: the model rescales inside its graph,
    so the normalization MediaPipe applies is the identity (mean 0, std 1)."""
    tensor = fb.TensorMetadataT()
    tensor.name = "image"
    tensor.description = f"RGB image, {size}x{size} pixels, values 0-255 (the model normalizes inside its graph)."
    properties = fb.ImagePropertiesT()
    properties.colorSpace = fb.ColorSpaceType.RGB
    tensor.content = tflite_metadata.content(fb.ContentProperties.ImageProperties, properties)
    if not quantized:  # A uint8 input carries its own scale and zero point: no normalization unit.
        normalization = fb.NormalizationOptionsT()
        normalization.mean, normalization.std = [0.0], [1.0]
        unit = fb.ProcessUnitT()
        unit.optionsType = fb.ProcessUnitOptions.NormalizationOptions
        unit.options = normalization
        tensor.processUnits = [unit]
    tensor.stats = tflite_metadata.stats(0.0, 255.0)
    return tensor
