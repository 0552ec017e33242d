"""Shared test helpers: tiny data and tiny models, in one place."""

import contextlib
import http.server
import json
import os
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from keras_tl import datasets  # noqa: E402
from keras_tl.core.contract import registry
from keras_tl.core.contract.config import TrainConfig  # noqa: E402
from keras_tl.image import backbones
from keras_tl.image.model import build_model  # noqa: E402

TINY_SIZE = 32


def tiny_config(tmp_path, **overrides):
    """A config that trains in seconds: MobileNetV2 at 32px, one epoch a phase."""
    values = dict(
        out=str(tmp_path / "run"),
        backbone="mobilenet_v2",
        weights="none",
        image_size=TINY_SIZE,
        head_epochs=1,
        fine_tune_epochs=1,
        batch_size=16,
        early_stopping_patience=None,
    )
    values.update(overrides)
    return TrainConfig(**values)


def local_pretrained_weights(tmp_path, backbone="mobilenet_v2", size=TINY_SIZE):
    """A weights file a test made itself, with real (non-default) BatchNorm statistics.

    It stands in for downloaded ImageNet weights: models built from it count as pretrained. The
    moving statistics are those of real digit images (one training-mode pass with momentum 0),
    so activations are normalized as in a trained network.
    """
    keras.utils.set_random_seed(0)  # The same file whichever tests ran before in this process.
    spec = registry.get(backbone)
    preprocess, base = backbones.build(spec, "none", size)
    norms = [l for l in base.layers if isinstance(l, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    images, _ = tiny_arrays(3, 12)
    images = keras.ops.image.resize(images.astype("float32"), (size, size))
    base(preprocess(images), training=True)
    path = str(tmp_path / f"{backbone}.weights.h5")
    base.save_weights(path)
    return path


def tiny_arrays(num_classes=3, per_class=12, size=TINY_SIZE, seed=0):
    """Real digit scans (scikit-learn) as uint8 RGB arrays: (images, labels)."""
    source = datasets.load_digits(list(range(num_classes)))
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [rng.choice(np.flatnonzero(source.labels == c), per_class, replace=False) for c in range(num_classes)]
    )
    return source.items[keep], source.labels[keep]


def write_image_folder(root, num_classes=3, per_class=8, size=40, fmt="png"):
    """Writes real digit scans as image files in class folders; returns the root."""
    images, labels = tiny_arrays(num_classes, per_class)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = os.path.join(root, f"class_{label}")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image).resize((size, size)).save(os.path.join(folder, f"img_{i}.{fmt}"))
    return str(root)


def tiny_model(tmp_path, num_classes=3, weights=None, **kwargs):
    weights = weights or local_pretrained_weights(tmp_path)
    return build_model("mobilenet_v2", num_classes=num_classes, weights=weights, image_size=TINY_SIZE, **kwargs)


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    keras.backend.clear_session()
    keras.config.set_dtype_policy("float32")
    yield
    # Also after: a module-scoped fixture of the next test file is built before this fixture runs
    # again, and must not inherit a test's mixed-precision policy.
    keras.config.set_dtype_policy("float32")


TOPICS = {
    "animals": ["cat", "dog", "horse", "sparrow", "tiger", "rabbit", "whale", "eagle"],
    "food": ["bread", "cheese", "apple", "soup", "rice", "cake", "pasta", "salad"],
    "vehicles": ["car", "truck", "bicycle", "train", "boat", "plane", "tractor", "scooter"],
}
_FILLERS = [
    "the",
    "a",
    "big",
    "small",
    "old",
    "new",
    "red",
    "quiet",
    "near",
    "the",
    "house",
    "today",
    "is",
    "was",
    "seen",
    "by",
    "river",
    "in",
    "morning",
    "with",
    "friends",
]


def tiny_texts(per_class=30, seed=0):
    """Short sentences whose topic word gives the class (animals/food/vehicles): (texts, labels)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, words in TOPICS.items():
        for _ in range(per_class):
            filler = list(rng.choice(_FILLERS, size=4))
            filler.insert(int(rng.integers(0, 5)), str(rng.choice(words)))
            texts.append(" ".join(filler))
            labels.append(label)
    return texts, labels


def tiny_bert_preset(path, texts, sequence_length=32, vocabulary_size=120, seed=0):
    """A 2-layer BERT saved as a KerasHub preset directory, with a WordPiece vocabulary computed from
    `texts`; loading it goes through `from_preset`, the code path of real presets. Returns the path."""
    import keras_hub
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(texts).batch(32),
        vocabulary_size,
        reserved_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        lowercase=True,
    )
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=2,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=sequence_length,
    )
    # Unit-scale token embeddings (BERT initializes them at 0.02): the frozen encoder's pooled
    # features then tell tokens apart, as a pretrained encoder's do, so the head can learn in phase 1.
    embedding = backbone.token_embedding.embeddings
    embedding.assign(np.random.default_rng(seed).normal(size=embedding.shape).astype("float32"))
    backbone.save_to_preset(str(path))
    preprocessor.save_to_preset(str(path))
    return str(path)


@contextlib.contextmanager
def fake_tf_serving(answer):
    """A local HTTP server speaking TF Serving's REST predict API (row format).

    `answer(instances)` returns the signature's outputs as a dict of arrays, one row per instance.
    Yields `(url, bodies)`: the server's address and the list of request bodies it received.
    """
    bodies = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            bodies.append((self.path, body))
            out = {k: np.asarray(v) for k, v in answer(body["instances"]).items()}
            rows = [
                {k: (v[i].decode() if isinstance(v[i], bytes) else v[i].tolist()) for k, v in out.items()}
                for i in range(len(body["instances"]))
            ]
            payload = json.dumps({"predictions": rows}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", bodies
    finally:
        server.shutdown()


@contextlib.contextmanager
def local_grpc_serving(name, saved_model_dir):
    """A local gRPC server speaking TF Serving's `PredictionService.Predict` for one exported
    SavedModel: it runs the requested signature on the request's tensors, as TF Serving does.

    Yields `(address, requests)`: "grpc://127.0.0.1:PORT" and the `PredictRequest`s it received.
    """
    from concurrent import futures

    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    loaded = tf.saved_model.load(saved_model_dir)
    requests = []

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            requests.append(request)
            if request.model_spec.name != name:
                context.abort(
                    grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({request.model_spec.name})"
                )
            signature = request.model_spec.signature_name or "serving_default"
            if signature not in loaded.signatures:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature name: "{signature}" not found')
            inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
            outputs = loaded.signatures[signature](**inputs)
            response = predict_pb2.PredictResponse()
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"grpc://127.0.0.1:{port}", requests
    finally:
        server.stop(0)


# The longest work first, so nothing long is handed out last to run alone while the other worker
# idles: each notebook is a work unit of its own (pytest_xdist_make_scheduler below), and
# `--no-loadscope-reorder` (pyproject addopts) makes xdist hand units out in this collection order
# (without it, pytest-xdist 3.8 orders --dist loadfile units by their test count). Longest first,
# from the durations of the full runs of 2026-12-03/04; everything else after, in file order.
LONGEST_FIRST = (
    "test_notebooks.py::test_notebook_executes",
    "test_faults.py",
    "test_multitask.py",
    "test_audio.py",
    "test_text.py",
    "test_export.py",
    "test_report.py",
    "test_adaptation.py",
    "test_training.py",
    "test_tflite_metadata.py",
)


def pytest_collection_modifyitems(items):
    def rank(item):
        where = os.path.basename(str(item.fspath)) + "::" + item.name
        return next((i for i, key in enumerate(LONGEST_FIRST) if where.startswith(key)), len(LONGEST_FIRST))

    items.sort(key=rank)  # Stable: the order within a file, and of the other files, stays.


def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile (a test file's module fixtures are built once), except that each notebook run
    is a work unit of its own, so the notebooks spread over the workers."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class NotebooksApart(LoadFileScheduling):
        def _split_scope(self, nodeid):
            return nodeid if "test_notebooks.py::test_notebook_executes" in nodeid else super()._split_scope(nodeid)

    return NotebooksApart(config, log)
