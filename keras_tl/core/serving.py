"""TensorFlow Serving helpers: a predict client for both of its APIs and a `models.config` generator.

`server` picks the API: `http://HOST:8501` speaks REST (row "instances" format: each image as
`{"b64": ...}`, each text as a plain string), `grpc://HOST:8500` speaks gRPC
(`PredictionService.Predict` through `tensorflow-serving-api`'s stub, tensors as `TensorProto`).
Either way the request goes to the `serving_default` signature that `keras_tl.core.export` writes
(encoded image bytes; raw text for a text model), or an audio model's `serving_wav` (WAV file
bytes), and each answer is a dict with "probabilities", "top_classes" and "labels".
"""

import base64
import json
import os
import urllib.error
import urllib.request

import numpy as np


def predict_request(image_bytes_list, signature="serving_default"):
    """The JSON body of a predict call for encoded images."""
    return {
        "signature_name": signature,
        "instances": [{"b64": base64.b64encode(b).decode("ascii")} for b in image_bytes_list],
    }


def predict_url(server, model, version=None):
    base = server.rstrip("/")
    path = f"/v1/models/{model}" + (f"/versions/{int(version)}" if version is not None else "")
    return f"{base}{path}:predict"


def predict(server, model, images, *, version=None, signature="serving_default", timeout=30):
    """Sends image files (or raw encoded bytes) to a TF Serving model; returns one dict per image.

    Args:
        server: str. e.g. "http://localhost:8501".
        model: str. The model name TF Serving serves (the folder under `exported_models/`).
        images: list of file paths or `bytes` (JPEG/PNG/GIF/BMP).
        version: int. Defaults to the newest version TF Serving loaded.
        signature: str. Defaults to "serving_default".
        timeout: float. Seconds. Defaults to 30.

    Returns:
        A list of dicts with "probabilities", "top_classes" and "labels" per image.

    Example:
    >>> keras_tl.core.serving.predict("http://localhost:8501", "digits", ["seven.png"])[0]["labels"]
    '7'
    """
    payloads = []
    for item in images:
        if isinstance(item, (bytes, bytearray)):
            payloads.append(bytes(item))
        else:
            with open(item, "rb") as f:
                payloads.append(f.read())
    if is_grpc(server):
        return predict_grpc(server, model, {"image_bytes": payloads}, version=version, signature=signature,
                            timeout=timeout)
    return _post(predict_url(server, model, version), predict_request(payloads, signature), server, timeout)


def predict_texts(server, model, texts, *, version=None, signature="serving_default", timeout=30):
    """Sends raw texts to a TF Serving text model; returns one dict per text.

    The model's `serving_default` (written by `keras-tl export` for a text run) tokenizes in the
    graph, so the request carries the strings themselves.

    Example:
    >>> keras_tl.core.serving.predict_texts("http://localhost:8501", "reviews", ["works well"])[0]["labels"]
    'positive'
    """
    if is_grpc(server):
        return predict_grpc(server, model, {"text": [str(t).encode("utf-8") for t in texts]}, version=version,
                            signature=signature, timeout=timeout)
    body = {"signature_name": signature, "instances": [str(t) for t in texts]}
    return _post(predict_url(server, model, version), body, server, timeout)


def pcm16_wav(path):
    """An audio file's bytes as 16-bit PCM WAV (what an audio export's `serving_wav` decodes).

    A 16-bit PCM WAV file is sent as it is; anything else (FLAC, OGG, MP3, float or 24-bit WAV) is
    decoded with `soundfile` and re-encoded at its own rate and channel count, which the signature
    resamples and mixes in the graph.
    """
    import io

    import soundfile

    info = soundfile.info(path)
    if info.format == "WAV" and info.subtype == "PCM_16":
        with open(path, "rb") as f:
            return f.read()
    wave, rate = soundfile.read(path, dtype="float32", always_2d=True)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(wave, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def predict_audio(server, model, clips, *, version=None, signature="serving_wav", timeout=30):
    """Sends audio files (or 16-bit PCM WAV bytes) to a TF Serving audio model; returns one dict per clip.

    The request goes to the `serving_wav` signature of an audio export, which cuts each file into
    the model's windows and averages their probabilities, as `keras-tl predict RUN_DIR clip` does.

    Example:
    >>> keras_tl.core.serving.predict_audio("http://localhost:8501", "drums", ["snare.flac"])[0]["labels"]
    'snare'
    """
    payloads = [bytes(c) if isinstance(c, (bytes, bytearray)) else pcm16_wav(c) for c in clips]
    if is_grpc(server):
        return predict_grpc(server, model, {"wav_bytes": payloads}, version=version, signature=signature,
                            timeout=timeout)
    return _post(predict_url(server, model, version), predict_request(payloads, signature), server, timeout)


def is_grpc(server):
    return str(server).startswith("grpc://")


def predict_grpc(server, model, inputs, *, version=None, signature="serving_default", timeout=30):
    """One `PredictionService.Predict` call over gRPC; returns one dict per example.

    Args:
        server: str. "grpc://HOST:PORT" (TF Serving's gRPC port is 8500 by default).
        model: str. The served model's name.
        inputs: dict. Signature input name -> a list or array, one entry per example.
        version: int. Defaults to the newest version the server loaded.

    Needs `tensorflow-serving-api` (`pip install "keras-tl[serving]"`), the ecosystem's client.
    """
    try:
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError as error:
        raise ImportError("gRPC predictions need TF Serving's client: pip install \"keras-tl[serving]\" "
                          f"(tensorflow-serving-api, matching your TensorFlow). ({error})") from None
    import tensorflow as tf

    target = server[len("grpc://"):].rstrip("/")
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    limit = [("grpc.max_receive_message_length", 256 << 20), ("grpc.max_send_message_length", 256 << 20)]
    with grpc.insecure_channel(target, options=limit) as channel:
        try:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise ConnectionError(f"Cannot reach TF Serving at {server!r}: {error.details()}") from None
            raise ValueError(f"TF Serving answered {error.code().name} for model {model!r} "
                             f"(signature {signature!r}): {error.details()}") from None
    outputs = {name: tf.make_ndarray(tensor) for name, tensor in response.outputs.items()}
    if "probabilities" not in outputs:
        raise ValueError(f"Unexpected TF Serving answer (no 'probabilities'): outputs {sorted(outputs)}")
    rows = []
    for i in range(len(outputs["probabilities"])):
        row = {}
        for name, value in outputs.items():
            item = value[i]
            row[name] = item.decode("utf-8") if isinstance(item, bytes) else np.asarray(item).tolist()
        rows.append(row)
    return rows


def _post(url, body, server, timeout):
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        detail = error.read().decode("utf-8", errors="replace")
        raise ValueError(f"TF Serving answered {error.code} for {request.full_url}: {detail}") from None
    except urllib.error.URLError as error:
        raise ConnectionError(f"Cannot reach TF Serving at {server!r}: {error.reason}") from None
    if "predictions" not in answer:
        raise ValueError(f"Unexpected TF Serving answer (no 'predictions'): {str(answer)[:300]}")
    return answer["predictions"]


def models_config(root="exported_models", names=None, base_path="/models"):
    """A TF Serving `--model_config_file` text listing every exported model under `root`.

    Args:
        root: str. The exports folder. Defaults to "exported_models".
        names: list of str. Models to list; defaults to every folder holding an integer version.
        base_path: str. Where `root` is mounted inside the serving container. Defaults to "/models".
    """
    if names is None:
        names = sorted(
            d for d in os.listdir(root)
            if os.path.isdir(os.path.join(root, d))
            and any(v.isdigit() for v in os.listdir(os.path.join(root, d)))
        )
    if not names:
        raise ValueError(f"No SavedModel exports (folders with integer versions) under {root!r}.")
    entries = "".join(
        f'  config {{\n    name: "{n}"\n    base_path: "{base_path.rstrip("/")}/{n}"\n'
        f'    model_platform: "tensorflow"\n  }}\n'
        for n in names
    )
    return f"model_config_list {{\n{entries}}}\n"
