"""The image modality: Keras Applications and KerasHub image backbones, image sources and decoding,
in-graph pixel preprocessing, augmentation, and TF Serving signatures on encoded bytes."""

from keras_tl.core.utils.lazy import submodule_getattr

# The image files keras-tl reads (what TensorFlow's decode_image decodes). Here, TensorFlow-free, so
# the CLI can tell image files apart without importing the image stack.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

__getattr__ = submodule_getattr(__name__, __path__)
