"""The audio modality: sound files -> waveforms -> in-graph log-mel front end -> backbone -> head.

See `keras_tl.audio.modality` (the plug-in), `backbones` (the registry entries), `data` (sources and
windowed pipelines), `layers` (the front end) and `export` (serving signatures on waveforms).
"""
