"""The audio modality: sound files -> waveforms -> in-graph log-mel front end -> backbone -> head.

See `keras_tl.audio.modality` (the plug-in), `backbones` (the registry entries), `data` (sources and
windowed pipelines), `layers` (the front end) and `export` (serving signatures on waveforms).
"""

# The audio files keras-tl reads (when libsndfile / the installed decoders can). Here, TensorFlow-free,
# so the CLI can tell audio files from images without importing the audio stack.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif")
