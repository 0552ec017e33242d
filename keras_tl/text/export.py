"""The text modality's export pieces: a SavedModel signature on raw strings, the TFLite token input.

KerasHub exports an encoder without its tokenizer; here the SavedModel's `serving_default`
signature runs the preset's preprocessor (tokenizer, truncation, padding) in the graph, so TF
Serving answers raw text. The TFLite model takes token ids: the tokenizer's tf.text ops are not
TFLite builtins (converting the raw-string signature fails on CaseFoldUTF8, RegexSplitWithOffsets,
FastWordpieceTokenizeWithOffsets, ...), so an app tokenizes with the vocabulary written beside it.
"""

import keras
import tensorflow as tf

from keras_tl.core.heads import probabilities_graph, serving_outputs, problem_of



def serving_function(model, preprocessor, class_names, top_k=5):
    """`serving_default`: raw strings `(N,)` -> probabilities, top classes and the top label."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serve(text):
        return serving_outputs(probabilities_graph(model(preprocessor(text), training=False)), class_names, problem_of(model), top_k)

    return serve


def tflite_signature(model, sequence_length):
    """One `(1, sequence_length)` int32 input per token tensor the model takes."""
    return {k: keras.InputSpec(shape=(1, sequence_length), dtype="int32", name=k) for k in sorted(model.input)}


def write_vocabulary(preprocessor, path):
    vocabulary = preprocessor.tokenizer.get_vocabulary()
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(vocabulary) + "\n")
