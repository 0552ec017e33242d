"""Benchmark: a linear probe on frozen audio features, the ceiling keras-tl's frozen phase should reach.

Data: `keras_tl.datasets.load_gm_instruments()` (train FluidR3, test all of TimGM6mb). For each seed,
11 training clips per family (10% of the labels, as `bench/instruments.py`), drawn by the seed; the
first 1 s window of each clip; the backbone's pooled features (`head_pool`, pretrained, inference
mode) with `avg` and `max` pooling; scikit-learn's logistic regression on standardized features for
three regularization strengths C. A reference, not a recipe: C is read on the test split here.

    python bench/instrument_probe.py [--backbones musicnn_mtt,aisfx_cnn9] [--seeds 0]

Prints one line per backbone, pooling, seed and C: `<backbone> <pooling> seed=<s> C=<c> accuracy=<%>`.
"""

import argparse

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="musicnn_mtt,musicnn_msd,aisfx_cnn9")
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()

    import keras
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    import keras_tl
    from keras_tl.audio import data as audio_data
    from keras_tl.audio.model import sample_rate
    from keras_tl.datasets.instruments import load_gm_instruments

    source = load_gm_instruments()
    train, test = source.predefined["train"], source.predefined["test"]
    for backbone in args.backbones.split(","):
        for pooling in ("avg", "max"):
            model = keras_tl.build_classifier(backbone, num_classes=11, clip_seconds=1.0, pooling=pooling).model
            features = keras.Model(model.input, model.get_layer("head_pool").output)
            rate = sample_rate(model)

            def of(indices, features=features, rate=rate):
                waves = [audio_data.windows(audio_data.decode(source.items[i], rate), rate)[0] for i in indices]
                return features.predict(np.stack(waves), verbose=0, batch_size=64)

            x_test = of(test)
            for seed in [int(s) for s in args.seeds.split(",")]:
                rng = np.random.default_rng(seed)
                picks = np.concatenate(
                    [rng.choice(train[source.labels[train] == c], 11, replace=False) for c in range(11)]
                )
                x_train = of(picks)
                scaler = StandardScaler().fit(x_train)
                for c in (0.01, 0.1, 1.0):
                    probe = LogisticRegression(C=c, max_iter=3000).fit(scaler.transform(x_train), source.labels[picks])
                    accuracy = 100 * np.mean(probe.predict(scaler.transform(x_test)) == source.labels[test])
                    print(f"{backbone} {pooling} seed={seed} C={c} accuracy={accuracy:.1f}", flush=True)


if __name__ == "__main__":
    main()
