"""The text modality's export pieces: a SavedModel signature on raw strings, the TFLite token input.

KerasHub exports an encoder without its tokenizer; here the SavedModel's `serving_default`
signature runs the preset's preprocessor (tokenizer, truncation, padding) in the graph, so TF
Serving answers raw text. The TFLite model takes token ids: the tokenizer's tf.text ops are not
TFLite builtins (converting the raw-string signature fails on CaseFoldUTF8, RegexSplitWithOffsets,
FastWordpieceTokenizeWithOffsets, ...), so an app tokenizes with the vocabulary written beside it.
"""

import keras
import tensorflow as tf

from keras_tl._vendor import tflite_metadata_schema as fb
from keras_tl.core.export import tflite_metadata
from keras_tl.core.models.heads import probabilities_graph, problem_of, serving_outputs


def serving_function(model, preprocessor, class_names, top_k=5, operating_point=None):
    """`serving_default`: raw strings `(N,)` -> probabilities, top classes and the top label."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        return serving_outputs(
            probabilities_graph(model(preprocessor(text), training=False)),
            class_names,
            problem_of(model),
            top_k,
            operating_point,
        )

    return serve


def tflite_signature(model, sequence_length):
    """One `(1, sequence_length)` int32 input per token tensor the model takes."""
    return {k: keras.InputSpec(shape=(1, sequence_length), dtype="int32", name=k) for k in sorted(model.input)}


def write_vocabulary(preprocessor, path):
    vocabulary = preprocessor.tokenizer.get_vocabulary()
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(vocabulary) + "\n")


def tflite_bert_inputs(details, vocabulary, *, lowercase):
    """BERT token inputs for MediaPipe's `TextClassifier`, which tokenizes raw strings itself: the
    three int32 `[1, L]` inputs named `ids`, `mask`, `segment_ids` (the names it looks them up by),
    and a WordPiece tokenizer unit with the vocabulary file. None unless the model takes exactly
    token ids, padding mask and segment ids (`details`: the interpreter's input details) and its
    tokenizer lower-cases: MediaPipe's BERT tokenizer always does (checked with mixed-case
    texts), so a cased vocabulary would see other tokens than in training."""
    if not lowercase:
        return None
    roles = {"token_ids": "ids", "padding_mask": "mask", "segment_ids": "segment_ids"}
    names = []
    for detail in details:
        role = [r for r in roles if r in detail["name"]]
        if len(role) != 1:
            return None
        names.append(role[0])
    if sorted(names) != sorted(roles):
        return None
    length = int(details[0]["shape"][-1])
    tensors = []
    for role in names:
        tensor = fb.TensorMetadataT()
        tensor.name = roles[role]
        tensor.description = {
            "token_ids": f"WordPiece token ids, [CLS] ... [SEP] then padding, {length} per text.",
            "padding_mask": "1 for real tokens, 0 for padding.",
            "segment_ids": "0 for every token (one segment).",
        }[role]
        tensor.content = tflite_metadata.content(fb.ContentProperties.FeatureProperties, fb.FeaturePropertiesT())
        tensors.append(tensor)
    vocab = fb.AssociatedFileT()
    vocab.name = "vocab.txt"
    vocab.description = "WordPiece vocabulary, one token per line (line number = id); texts are lower-cased first."
    vocab.type = fb.AssociatedFileType.VOCABULARY
    options = fb.BertTokenizerOptionsT()
    options.vocabFile = [vocab]
    unit = fb.ProcessUnitT()
    unit.optionsType, unit.options = fb.ProcessUnitOptions.BertTokenizerOptions, options
    data = "".join(f"{token}\n" for token in vocabulary).encode("utf-8")
    return tflite_metadata.Inputs(tensors, [unit], {"vocab.txt": data})
