"""TensorFlow Serving helpers: a bounded predict client for both of its APIs, and a `models.config`.

`server` picks the API: `http(s)://HOST:8501` speaks REST (row "instances" format: binary inputs as
`{"b64": ...}`, texts as plain strings), `grpc://HOST:8500` speaks gRPC
(`PredictionService.Predict` through `tensorflow-serving-api`'s stub, tensors as `TensorProto`).
What a request carries is the items' modality's (`Modality.serving_request`: images as their
encoded bytes to `serving_default`, texts as strings, audio as 16-bit WAV bytes to `serving_wav`);
each answer is a dict with "probabilities", "top_classes" and "labels".

The client is bounded: answers larger than `max_bytes` are refused (REST: read in chunks, never
whole), a whole request has one deadline (not a per-read timeout a slow server can stretch), only
http, https and grpc addresses are used, the answer must hold one prediction per item, and an
error's body is cut to a few hundred characters.
"""

import base64
import json
import os
import socket
import threading
import urllib.parse

import numpy as np

from keras_tl.core.contract.choices import MODALITIES
from keras_tl.core.contract.errors import ConfigError, ServingError, ServingUnavailableError

SCHEMES = ("http", "https", "grpc")
DEADLINE_SECONDS = 60.0
MAX_RESPONSE_BYTES = 64 << 20  # 64 MiB: probabilities of ~1 M predictions of 10 classes.
ERROR_CHARS = 300
_CHUNK = 1 << 16


def check_server(server):
    """Returns `(scheme, host, port)` of a TF Serving address, or raises `ConfigError`."""
    parsed = urllib.parse.urlsplit(str(server))
    if parsed.scheme not in SCHEMES or not parsed.hostname:
        raise ConfigError(
            f"`server` must be http://HOST:PORT (REST, port 8501 by default), https://... or "
            f"grpc://HOST:PORT (port 8500). Received: server={server!r}"
        )
    try:
        port = parsed.port
    except ValueError:
        raise ConfigError(f"`server` has an invalid port. Received: server={server!r}") from None
    default = {"http": 8501, "https": 443, "grpc": 8500}[parsed.scheme]
    return parsed.scheme, parsed.hostname, port or default


def guess_modality(items):
    """The modality whose file extensions every item has (image or audio files), else a `ConfigError`."""
    from keras_tl.core.contract import modality as modalities

    for name in MODALITIES:
        extensions = modalities.get(name).file_extensions
        if extensions and all(str(item).lower().endswith(extensions) for item in items):
            return name
    raise ConfigError(
        f"Cannot tell what the items are from their names; pass modality (one of {list(MODALITIES)}). "
        f"Received: {[str(i)[:40] for i in items[:3]]}"
    )


def predict(
    server,
    model,
    items,
    *,
    modality=None,
    version=None,
    signature=None,
    timeout=DEADLINE_SECONDS,
    max_bytes=MAX_RESPONSE_BYTES,
):
    """Sends raw items to a TF Serving model exported by keras-tl; returns one dict per item.

    Args:
        server: str. "http://localhost:8501" (REST) or "grpc://localhost:8500".
        model: str. The model name TF Serving serves (the folder under `exported_models/`).
        items: list. What the modality's export takes raw: image files or encoded bytes, texts, audio
            files or 16-bit WAV bytes.
        modality: str. What the items are (a `keras_tl.core.contract.choices.MODALITIES` name). Defaults
            to the modality whose file extensions every item has (`guess_modality`).
        version: int. Defaults to the newest version TF Serving loaded.
        signature: str. Defaults to the modality's (`serving_default`; `serving_wav` for audio files).
        timeout: float. Seconds for the whole request. Defaults to 60.
        max_bytes: int. The largest answer read. Defaults to 64 MiB.

    Returns:
        A list of dicts with "probabilities", "top_classes" and "labels" per item.

    Example:
    >>> keras_tl.core.export.serving.predict("http://localhost:8501", "digits", ["seven.png"])[0]["labels"]
    '7'
    """
    from keras_tl.core.contract import modality as modalities

    scheme, host, port = check_server(server)
    items = list(items)
    if not items:
        raise ConfigError("Nothing to predict: `items` is empty.")
    request = modalities.get(modality or guess_modality(items)).serving_request(items)
    signature = signature or request.signature
    if scheme == "grpc":
        rows = _predict_grpc(
            f"{host}:{port}", model, {request.input: request.values}, version, signature, timeout, max_bytes, server
        )
    else:
        instances = [
            {"b64": base64.b64encode(v).decode("ascii")} if isinstance(v, bytes) else v for v in request.values
        ]
        rows = _predict_rest(
            scheme,
            host,
            port,
            model,
            {"signature_name": signature, "instances": instances},
            version,
            timeout,
            max_bytes,
            server,
        )
    if len(rows) != len(items):
        raise ServingError(
            f"TF Serving answered {len(rows)} predictions for {len(items)} items (model {model!r}, "
            f"signature {signature!r}); expected one per item."
        )
    return rows


def predict_url(scheme, host, port, model, version=None):
    path = f"/v1/models/{model}" + (f"/versions/{int(version)}" if version is not None else "")
    return f"{scheme}://{host}:{port}{path}:predict"


def _predict_rest(scheme, host, port, model, body, version, timeout, max_bytes, server):
    url = predict_url(scheme, host, port, model, version)
    status, payload = _post(
        scheme,
        host,
        port,
        urllib.parse.urlsplit(url).path,
        json.dumps(body).encode("utf-8"),
        timeout,
        max_bytes,
        server,
    )
    text = payload.decode("utf-8", errors="replace")
    if status != 200:
        raise ServingError(f"TF Serving answered {status} for {url}: {_cut(text)}")
    try:
        answer = json.loads(text)
    except ValueError:
        raise ServingError(f"TF Serving's answer is not JSON: {_cut(text)}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
        raise ServingError(f"Unexpected TF Serving answer (no 'predictions' list): {_cut(text)}")
    rows = answer["predictions"]
    if not all(isinstance(row, dict) for row in rows):
        raise ServingError(f"Unexpected TF Serving answer (predictions are not named outputs): {_cut(text)}")
    return rows


def _post(scheme, host, port, path, data, timeout, max_bytes, server):
    """`(status, body)` of one POST, within `timeout` seconds in all and at most `max_bytes` of body."""
    import http.client

    connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    connection = connection_class(host, port, timeout=timeout)
    outcome = {}

    def exchange():
        try:
            connection.connect()
            outcome["socket"] = connection.sock  # The response keeps reading it after the connection lets go.
            connection.request("POST", path, body=data, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            declared = response.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ServingError(
                    f"TF Serving's answer would be {int(declared):,} bytes, more than the "
                    f"{max_bytes:,} read (max_bytes)."
                )
            chunks, size = [], 0
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ServingError(
                        f"TF Serving's answer is over {max_bytes:,} bytes (max_bytes); not read further."
                    )
                chunks.append(chunk)
            outcome["answer"] = (response.status, b"".join(chunks))
        except BaseException as error:  # Handed to the calling thread, which raises it.
            outcome["error"] = error

    worker = threading.Thread(target=exchange, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        _abort(connection, outcome.get("socket"))
        worker.join(5)
        raise ServingError(f"TF Serving at {server!r} gave no complete answer within {timeout:g} s (timeout).")
    connection.close()
    error = outcome.get("error")
    if isinstance(error, ServingError):
        raise error
    if isinstance(error, OSError):  # Refused, reset, unknown host, a socket timeout.
        raise ServingUnavailableError(f"Cannot reach TF Serving at {server!r}: {error}") from None
    if isinstance(error, http.client.HTTPException):
        raise ServingError(
            f"{server!r} did not answer as an HTTP server does: {type(error).__name__} {_cut(error)}"
        ) from None
    if error is not None:
        raise error
    return outcome["answer"]


def _abort(connection, sock):
    """Unblocks a thread reading `connection` through `sock` (a deadline passed)."""
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    connection.close()


def _cut(text, limit=ERROR_CHARS):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _predict_grpc(target, model, inputs, version, signature, timeout, max_bytes, server):
    """One `PredictionService.Predict` call over gRPC (deadline `timeout`); returns one dict per example.

    Needs `tensorflow-serving-api` (`pip install "keras-tl[serving]"`), the ecosystem's client.
    """
    try:
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError as error:
        raise ConfigError(
            'gRPC predictions need TF Serving\'s client: pip install "keras-tl[serving]" '
            f"(tensorflow-serving-api, matching your TensorFlow). ({error})"
        ) from None
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    limit = [("grpc.max_receive_message_length", int(max_bytes)), ("grpc.max_send_message_length", 256 << 20)]
    with grpc.insecure_channel(target, options=limit) as channel:
        try:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAVAILABLE:
                raise ServingUnavailableError(
                    f"Cannot reach TF Serving at {server!r}: {_cut(error.details())}"
                ) from None
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ServingError(f"TF Serving at {server!r} gave no answer within {timeout:g} s (timeout).") from None
            raise ServingError(
                f"TF Serving answered {error.code().name} for model {model!r} "
                f"(signature {signature!r}): {_cut(error.details())}"
            ) from None
    outputs = {name: tf.make_ndarray(tensor) for name, tensor in response.outputs.items()}
    if "probabilities" not in outputs:
        raise ServingError(f"Unexpected TF Serving answer (no 'probabilities'): outputs {sorted(outputs)}")
    rows = []
    for i in range(len(outputs["probabilities"])):
        row = {}
        for name, value in outputs.items():
            item = value[i]
            row[name] = item.decode("utf-8") if isinstance(item, bytes) else np.asarray(item).tolist()
        rows.append(row)
    return rows


def models_config(root="exported_models", names=None, base_path="/models"):
    """A TF Serving `--model_config_file` text listing every exported model under `root`.

    Args:
        root: str. The exports folder. Defaults to "exported_models".
        names: list of str. Models to list; defaults to every folder holding an integer version.
        base_path: str. Where `root` is mounted inside the serving container. Defaults to "/models".
    """
    if not os.path.isdir(root):
        raise ConfigError(f"No exports folder at {root!r}. Expected the --out folder of `keras-tl export`.")
    if names is None:
        names = sorted(
            d
            for d in os.listdir(root)
            if os.path.isdir(os.path.join(root, d)) and any(v.isdigit() for v in os.listdir(os.path.join(root, d)))
        )
    if not names:
        raise ConfigError(f"No SavedModel exports (folders with integer versions) under {root!r}.")
    entries = "".join(
        f'  config {{\n    name: "{n}"\n    base_path: "{base_path.rstrip("/")}/{n}"\n'
        f'    model_platform: "tensorflow"\n  }}\n'
        for n in names
    )
    return f"model_config_list {{\n{entries}}}\n"
