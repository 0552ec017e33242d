"""Hostile files and hostile servers: reading a checkpoint never runs code from it, views never reach
outside their storage, and the TF Serving client is bounded in size, time and schemes."""

import builtins
import contextlib
import http.server
import io
import json
import pickle
import struct
import threading
import time
import zipfile

import numpy as np
import pytest

import keras_tl
from keras_tl.core.export import serving
from keras_tl.weights import torch_weights

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _Opens:
    """Pickles to a call of `builtins.open(path, "w")`: loading it creates `path`, a visible side effect."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


def _legacy_file(path, parts):
    """A legacy (non-zip) `torch.save` file: magic, protocol, sys info, tree, storage keys, then storages."""
    with open(path, "wb") as f:
        for part in parts:
            if isinstance(part, bytes):
                f.write(part)
            else:
                pickle.dump(part, f, protocol=2)
    return str(path)


def _tree_pickle(key, offset, size, stride, numel):
    """The tree pickle of `{"w": tensor}` written with the opcodes torch emits (GLOBAL torch FloatStorage and
    _rebuild_tensor_v2), without torch: hand-built protocol-2 bytes."""
    out = io.BytesIO()
    out.write(b"\x80\x02")  # PROTO 2
    out.write(b"}q\x00")  # EMPTY_DICT, BINPUT 0
    out.write(b"X\x01\x00\x00\x00w")  # "w"
    out.write(b"ctorch._utils\n_rebuild_tensor_v2\n")
    out.write(b"(")  # MARK (the call's arguments)
    out.write(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n")  # the persistent id tuple
    out.write(b"X" + struct.pack("<I", len(key)) + key.encode())
    out.write(b"X\x03\x00\x00\x00cpu")
    out.write(b"J" + struct.pack("<i", numel))
    out.write(b"tQ")  # TUPLE, BINPERSID
    out.write(b"J" + struct.pack("<i", offset))
    out.write(b"(" + b"".join(b"J" + struct.pack("<i", v) for v in size) + b"t")
    out.write(b"(" + b"".join(b"J" + struct.pack("<i", v) for v in stride) + b"t")
    out.write(b"\x89")  # NEWFALSE (requires_grad)
    out.write(b"ccollections\nOrderedDict\n)R")  # backward hooks: OrderedDict()
    out.write(b"tR")  # TUPLE, REDUCE
    out.write(b"s.")  # SETITEM, STOP
    return out.getvalue()


def _storage(values):
    values = np.asarray(values, np.float32)
    return struct.pack("<q", len(values)) + values.tobytes()


def test_a_hand_built_legacy_checkpoint_is_read(tmp_path):
    """The legacy layout, written without torch, reads back as its values: the format the tests below
    tamper with is the real one."""
    path = str(tmp_path / "ok.pth")
    with open(path, "wb") as f:
        for part in (LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(part, f, protocol=2)
        f.write(_tree_pickle("0", 1, (2, 2), (2, 1), 5))
        pickle.dump(["0"], f, protocol=2)
        f.write(_storage([0, 1, 2, 3, 4]))
    state = torch_weights.load_state_dict(path)
    np.testing.assert_array_equal(state["w"], [[1, 2], [3, 4]])


@pytest.mark.parametrize("position", ["magic", "protocol", "sys_info", "tree", "storage_keys"])
def test_no_pickle_of_a_legacy_checkpoint_runs_code(tmp_path, position):
    """Every one of the five pickles goes through the restricted unpickler (only the tree did: a
    crafted magic number, protocol, sys info or key list created a file while being "read")."""
    marker = tmp_path / f"pwned_{position}"
    parts = {
        "magic": LEGACY_MAGIC,
        "protocol": 1001,
        "sys_info": {"little_endian": True},
        "tree": {"w": 1},
        "storage_keys": [],
    }
    parts[position] = _Opens(marker)
    path = _legacy_file(tmp_path / "evil.pth", list(parts.values()))
    with pytest.raises(keras_tl.WeightsError, match="not read|not a PyTorch checkpoint"):
        torch_weights.load_state_dict(path)
    assert not marker.exists()


def test_no_pickle_of_a_zip_checkpoint_runs_code(tmp_path):
    marker = tmp_path / "pwned_zip"
    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": _Opens(marker)}, protocol=2))
    with pytest.raises(keras_tl.WeightsError, match="not read"):
        torch_weights.load_state_dict(str(path))
    assert not marker.exists()


@pytest.mark.parametrize(
    "offset, size, stride, numel, problem",
    [
        (0, (2, 2), (2, 1), 3, "reaches element 3 of a storage of 3"),  # Reads past the end.
        (4, (2,), (1,), 3, "reaches element 5"),  # Offset past the end.
        (0, (2, 2), (-1, 1), 4, "non-negative"),  # A negative stride walks backwards out of the buffer.
    ],
)
def test_tensor_views_outside_their_storage_are_refused(tmp_path, offset, size, stride, numel, problem):
    path = tmp_path / "view.pth"
    with open(path, "wb") as f:
        for part in (LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(part, f, protocol=2)
        f.write(_tree_pickle("0", offset, size, stride, numel))
        pickle.dump(["0"], f, protocol=2)
        f.write(_storage(np.arange(numel)))
    with pytest.raises(keras_tl.WeightsError, match=problem):
        torch_weights.load_state_dict(str(path))


def test_truncated_and_non_checkpoint_files_are_weights_errors(tmp_path):
    path = tmp_path / "cut.pth"
    with open(path, "wb") as f:
        for part in (LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(part, f, protocol=2)
        f.write(_tree_pickle("0", 0, (4,), (1,), 4))
        pickle.dump(["0"], f, protocol=2)
        f.write(_storage([1, 2, 3, 4])[:-6])  # The last value cut short.
    with pytest.raises(keras_tl.WeightsError, match="truncated"):
        torch_weights.load_state_dict(str(path))
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(keras_tl.WeightsError):
        torch_weights.load_state_dict(str(tmp_path / "text.pth"))
    with pytest.raises(keras_tl.WeightsError, match="not found"):
        torch_weights.load_state_dict(str(tmp_path / "missing.pth"))


# ---- a hostile TF Serving (loopback, bounded)


@contextlib.contextmanager
def hostile_server(behaviour):
    """A loopback HTTP server that answers every POST with `behaviour(handler, body)`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                behaviour(self, body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # The client hung up, as it should.

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads, server.block_on_close = True, False  # A stuck handler never holds the test.
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _answer(handler, status, payload, length=None):
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(length if length is not None else len(payload)))
    handler.end_headers()
    handler.wfile.write(payload)


def _rows(count):
    return json.dumps(
        {"predictions": [{"probabilities": [0.9, 0.1], "top_classes": [0, 1], "labels": "a"}] * count}
    ).encode()


def test_a_well_behaved_server_answers(tmp_path):
    with hostile_server(lambda h, body: _answer(h, 200, _rows(len(body["instances"])))) as url:
        rows = serving.predict(url, "m", [b"x", b"y"], modality="image")
    assert [r["labels"] for r in rows] == ["a", "a"]


def test_an_answer_larger_than_the_limit_is_not_read(tmp_path):
    def huge(handler, body):  # Declares 300 MB and streams it; the client must stop at its limit.
        handler.send_response(200)
        handler.send_header("Content-Length", str(300 << 20))
        handler.end_headers()
        chunk = b"[" * (1 << 16)
        for _ in range(300 << 4):
            handler.wfile.write(chunk)

    def unannounced(handler, body):  # No length: the body just keeps coming.
        handler.send_response(200)
        handler.end_headers()
        for _ in range(1 << 12):
            handler.wfile.write(b" " * (1 << 16))

    for behaviour in (huge, unannounced):
        with hostile_server(behaviour) as url:
            with pytest.raises(keras_tl.ServingError, match="max_bytes"):
                serving.predict(url, "m", [b"x"], modality="image", max_bytes=1 << 20, timeout=20)


def test_a_server_that_dribbles_is_cut_off_at_the_deadline():
    def dribble(handler, body):
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.3)

    def silent(handler, body):
        time.sleep(10)

    for behaviour in (dribble, silent):
        with hostile_server(behaviour) as url:
            started = time.monotonic()
            with pytest.raises(keras_tl.ServingError, match="within 1.5 s"):
                serving.predict(url, "m", [b"x"], modality="image", timeout=1.5)
            assert time.monotonic() - started < 5


def test_an_answer_must_hold_one_prediction_per_item():
    with hostile_server(lambda h, body: _answer(h, 200, _rows(0))) as url:
        with pytest.raises(keras_tl.ServingError, match="0 predictions for 2 items"):
            serving.predict(url, "m", [b"x", b"y"], modality="image")


def test_an_error_body_is_cut_and_the_status_named():
    with hostile_server(lambda h, body: _answer(h, 500, b"E" * (5 << 20))) as url:
        with pytest.raises(keras_tl.ServingError) as info:
            serving.predict(url, "m", [b"x"], modality="image")
    message = str(info.value)
    assert "answered 500" in message and len(message) < 600 and "5,242,880 characters" in message


@pytest.mark.parametrize("server", ["file:///etc/passwd", "ftp://example.com/m", "localhost:8501", "http://"])
def test_only_http_https_and_grpc_addresses_are_used(server):
    with pytest.raises(keras_tl.ConfigError, match="`server` must be"):
        serving.predict(server, "m", [b"x"], modality="image")


def test_nobody_listening_is_a_serving_unavailable_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # Bound, not listening: connections are refused.
        with pytest.raises(keras_tl.ServingUnavailableError, match="Cannot reach TF Serving"):
            serving.predict(f"http://127.0.0.1:{port}", "m", [b"x"], modality="image", timeout=5)


# ---- a hostile TF Serving over gRPC (loopback, bounded)


@contextlib.contextmanager
def hostile_grpc_server(behaviour):
    """A loopback gRPC `PredictionService` whose `Predict` is `behaviour(request, context)`."""
    from concurrent import futures

    import grpc  # The [serving] extra (tensorflow-serving-api), part of the test extra.
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    class Service(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            return behaviour(request, context)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"grpc://127.0.0.1:{port}"
    finally:
        server.stop(0)


def _grpc_answer(probabilities):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(np.asarray(probabilities, np.float32)))
    return response


def test_grpc_answers_over_the_size_limit_are_refused():
    """A 4 MB answer to a client allowed 1 MiB: refused by gRPC before it is kept, named in one line."""
    with hostile_grpc_server(lambda request, context: _grpc_answer(np.zeros((2, 500_000)))) as url:
        with pytest.raises(keras_tl.ServingError, match="RESOURCE_EXHAUSTED") as refused:
            serving.predict(url, "m", [b"x", b"y"], modality="image", max_bytes=1 << 20)
    assert len(str(refused.value)) < 600 and "\n" not in str(refused.value)


def test_a_silent_grpc_server_is_cut_off_at_the_deadline():
    released = threading.Event()

    def silent(request, context):
        released.wait(30)  # Never answers within the client's deadline.
        return _grpc_answer(np.zeros((2, 2)))

    with hostile_grpc_server(silent) as url:
        start = time.perf_counter()
        try:
            with pytest.raises(keras_tl.ServingError, match=r"no answer within 1\.5 s"):
                serving.predict(url, "m", [b"x", b"y"], modality="image", timeout=1.5)
        finally:
            released.set()
    assert time.perf_counter() - start < 10


def test_grpc_error_details_are_cut_and_counts_checked():
    import grpc

    def failing(request, context):
        # Far over the 300 characters kept, and under gRPC's 8 kB soft limit on metadata (between 8 and
        # 16 kB it refuses some calls at random).
        context.abort(grpc.StatusCode.INTERNAL, "x" * 2000)

    with hostile_grpc_server(failing) as url:
        with pytest.raises(keras_tl.ServingError, match="answered INTERNAL") as refused:
            serving.predict(url, "m", [b"x", b"y"], modality="image")
    assert len(str(refused.value)) < 600 and "characters)" in str(refused.value)
    with hostile_grpc_server(lambda request, context: _grpc_answer(np.zeros((0, 2)))) as url:
        with pytest.raises(keras_tl.ServingError, match="0 predictions for 2 items"):
            serving.predict(url, "m", [b"x", b"y"], modality="image")
