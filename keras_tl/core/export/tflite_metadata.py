"""TFLite metadata that MediaPipe Tasks and other LiteRT clients read, written into exported files.

A TFLite file carries its metadata as a flatbuffer (schema `metadata_schema.fbs`, identifier
"M001") in a model buffer named `TFLITE_METADATA`, and the files it names (labels.txt) as a zip
archive appended to the model: the layout MediaPipe's and TFLite Support's `MetadataPopulator`
write. `ImageClassifier` reads the input normalization and the label map from it, `AudioClassifier`
the sample rate and channel count. A modality builds its inputs' metadata
(`keras_tl.image.export.tflite_input`, ...) from the pieces here. Nothing here touches the graph: an interpreter gives the same
outputs with or without the metadata (the tests check it).

    blob = metadata_buffer(about, inputs=Inputs([named_input("pixels", "...")]), outputs=[scores_output(labels)])
    with_metadata = populate(model_bytes, blob, {"labels.txt": b"cat\\ndog\\n"})
"""

import io
import zipfile
from dataclasses import dataclass, field

import flatbuffers
import numpy as np

from keras_tl._vendor import tflite_metadata_schema as fb
from keras_tl.core.contract.errors import ConfigError

METADATA_NAME = "TFLITE_METADATA"
MODEL_IDENTIFIER = b"TFL3"
METADATA_IDENTIFIER = b"M001"
LABELS_FILE = "labels.txt"


@dataclass(frozen=True)
class About:
    """Model-level fields: shown by metadata viewers (Netron, Android Studio) and model cards."""

    name: str
    description: str
    version: str = ""
    author: str = "keras-tl"
    licence: str = ""


@dataclass(frozen=True)
class Inputs:
    """What a modality says about a model's inputs: tensor metadata in the interpreter's input
    order, subgraph-level process units (a tokenizer) and the files they name (name -> bytes)."""

    tensors: list
    process_units: list = field(default_factory=list)
    files: dict = field(default_factory=dict)


def named_input(name, description):
    """An input described by name only (no content type MediaPipe Tasks could act on)."""
    tensor = fb.TensorMetadataT()
    tensor.name, tensor.description = name, description
    return tensor


def named_inputs(details, what):
    """`Inputs` naming each of an interpreter's input `details` ("<what> model input, shape ...")."""
    return Inputs(
        [
            named_input(d["name"], f"{what} model input, shape {list(d['shape'])}, {d['dtype'].__name__}")
            for d in details
        ]
    )


def scores_output(class_names, *, multilabel=False, name="probability", labels_file=LABELS_FILE):
    """An output: one probability per class in label order, with `labels_file` as its label map
    (a multi-task model has one per head, named after the head: MediaPipe reports it as head_name)."""
    tensor = fb.TensorMetadataT()
    tensor.name = name
    tensor.description = (
        "Independent probability of each label (multi-label: sigmoid per label)."
        if multilabel
        else f"Probability of each of the {len(class_names)} classes, in {labels_file} order."
    )
    tensor.content = content(fb.ContentProperties.FeatureProperties, fb.FeaturePropertiesT())
    tensor.stats = stats(0.0, 1.0)
    labels = fb.AssociatedFileT()
    labels.name = labels_file
    labels.description = "Labels of the output's classes, one per line, in output order."
    labels.type = fb.AssociatedFileType.TENSOR_AXIS_LABELS
    tensor.associatedFiles = [labels]
    return tensor


def metadata_buffer(about, *, inputs, outputs):
    """The metadata flatbuffer (bytes) of a model with one subgraph."""
    subgraph = fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata, subgraph.outputTensorMetadata = list(inputs.tensors), list(outputs)
    subgraph.inputProcessUnits = list(inputs.process_units) or None
    metadata = fb.ModelMetadataT()
    metadata.name, metadata.description, metadata.author = about.name, about.description, about.author
    metadata.version, metadata.license = about.version, about.licence
    metadata.subgraphMetadata = [subgraph]
    metadata.minParserVersion = min_parser_version(metadata)
    builder = flatbuffers.Builder(0)
    builder.Finish(metadata.Pack(builder), METADATA_IDENTIFIER)
    return bytes(builder.Output())


def min_parser_version(metadata):
    """The oldest metadata parser that understands every field used (the schema's version history;
    what MediaPipe's populator computes in C++), for the fields keras-tl writes."""
    tokenizers = (fb.ProcessUnitOptions.BertTokenizerOptions, fb.ProcessUnitOptions.SentencePieceTokenizerOptions)
    needed = [(1, 0, 0)]
    for subgraph in metadata.subgraphMetadata or []:
        tensors = (subgraph.inputTensorMetadata or []) + (subgraph.outputTensorMetadata or [])
        units = (subgraph.inputProcessUnits or []) + [u for t in tensors for u in t.processUnits or []]
        files = [f for t in tensors for f in t.associatedFiles or []] + [
            f for u in units if u.optionsType in tokenizers for f in getattr(u.options, "vocabFile", None) or []
        ]
        if any(u.optionsType in tokenizers for u in units):
            needed.append((1, 1, 0))
        if any(
            t.content is not None and t.content.contentPropertiesType == fb.ContentProperties.AudioProperties
            for t in tensors
        ):
            needed.append((1, 3, 0))
        if any(f.type == fb.AssociatedFileType.VOCABULARY for f in files):
            needed.append((1, 0, 1))
    return ".".join(map(str, max(needed)))


def output_order(model):
    """The tensor indices of a TFLite model's (first subgraph's) outputs, in the order metadata lists them."""
    from ai_edge_litert import schema_py_generated as schema

    return [int(i) for i in schema.Model.GetRootAsModel(bytes(model), 0).Subgraphs(0).OutputsAsNumpy()]


def populate(model, metadata, files):
    """`model` (TFLite bytes) with `metadata` in its `TFLITE_METADATA` buffer and `files` (name ->
    bytes) appended as a zip archive. Any metadata and files the model had are replaced."""
    from ai_edge_litert import schema_py_generated as schema

    model = bytes(model)
    if model[4:8] != MODEL_IDENTIFIER:
        raise ConfigError(f"Not a TFLite flatbuffer: file identifier {model[4:8]!r}, expected {MODEL_IDENTIFIER!r}.")
    tree = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, np.uint8)
    tree.buffers = tree.buffers or []
    tree.metadata = tree.metadata or []
    entry = next((m for m in tree.metadata if _text(m.name) == METADATA_NAME), None)
    if entry is None:
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        tree.buffers.append(buffer)
        entry.buffer = len(tree.buffers) - 1
        tree.metadata.append(entry)
    else:
        tree.buffers[entry.buffer] = buffer
    builder = flatbuffers.Builder(len(model) + len(metadata) + 1024)
    builder.Finish(tree.Pack(builder), MODEL_IDENTIFIER)
    out = io.BytesIO(bytes(builder.Output()))
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def read(model):
    """`(metadata, files)` of a TFLite file's bytes: the `ModelMetadataT` object (None when it has
    none) and its appended files (name -> bytes)."""
    from ai_edge_litert import schema_py_generated as schema

    model = bytes(model)
    root = schema.Model.GetRootAsModel(model, 0)
    metadata = None
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if _text(entry.Name()) == METADATA_NAME:
            blob = root.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
            if blob[4:8] != METADATA_IDENTIFIER:
                raise ConfigError(
                    f"The {METADATA_NAME} buffer is not a metadata flatbuffer "
                    f"(identifier {blob[4:8]!r}, expected {METADATA_IDENTIFIER!r})."
                )
            metadata = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(blob, 0))
    files = {}
    if zipfile.is_zipfile(io.BytesIO(model)):
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            files = {name: archive.read(name) for name in archive.namelist()}
    return metadata, files


def content(kind, properties):
    content = fb.ContentT()
    content.contentPropertiesType, content.contentProperties = kind, properties
    return content


def stats(low, high):
    stats = fb.StatsT()
    stats.min, stats.max = [float(low)], [float(high)]
    return stats


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value
