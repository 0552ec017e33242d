import pytest
from conftest import tiny_config, write_image_folder

from keras_tl.core.contract.config import TrainConfig
from keras_tl.core.contract.fields import parse_unfreeze
from keras_tl.workflow import check_config, train


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(fine_tune_epochs=-1), "`fine_tune_epochs` must be an integer >= 0. Received: fine_tune_epochs=-1"),
        (dict(head_epochs=1.5), "`head_epochs` must be an integer >= 0"),
        (dict(strategy="fast"), "`strategy` must be one of ['two_phase', 'feature_extraction', 'full']"),
        (dict(unfreeze="top:0"), "Received: unfreeze='top:0'"),
        (dict(unfreeze="half"), "Received: unfreeze='half'"),
        (dict(fine_tune_lr=0), "`fine_tune_lr` must be a finite positive number"),
        (dict(head_lr=float("nan")), "`head_lr` must be a finite positive number"),
        (dict(head_lr=float("inf")), "Received: head_lr=inf"),
        (dict(adaptation_weight=float("nan")), "`adaptation_weight` must be a finite number > 0"),
        (dict(seed=2**32), "`seed` must be an integer >= 0 and <= 4294967295"),
        (dict(val_split=0.5, test_split=0.5), "must leave examples for training"),
        (dict(dense_units=[0]), "`dense_units` must be a list of positive integers"),
        (dict(monitor="val_f1"), "`monitor` must be one of ['val_loss', 'val_accuracy']. Received: monitor='val_f1'"),
        (
            dict(augment="heavy"),
            "`augment` must be one of ['none', 'light', 'standard', 'strong']. Received: augment='heavy'",
        ),
    ],
)
def test_bad_fields_name_value_and_allowed(overrides, message):
    with pytest.raises(ValueError) as info:
        TrainConfig(**overrides).validate()
    assert message in str(info.value)


def test_unknown_key_is_rejected_by_name():
    with pytest.raises(ValueError, match=r"Unknown config keys: \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})


def test_parse_unfreeze():
    assert parse_unfreeze("all") == ("all", None)
    assert parse_unfreeze("top:20") == ("top", 20)
    assert parse_unfreeze("fraction:0.25") == ("fraction", 0.25)
    assert parse_unfreeze("blocks:2") == ("blocks", 2)
    assert parse_unfreeze("from:block_13") == ("from", "block_13")


def test_unknown_backbone_lists_available(tmp_path):
    config = tiny_config(tmp_path, backbone="efficientnet_b9", data=str(tmp_path))
    with pytest.raises(ValueError) as info:
        check_config(config)
    assert "Unknown backbone 'efficientnet_b9'" in str(info.value)
    assert "efficientnet_b0" in str(info.value)


def test_image_size_below_backbone_minimum(tmp_path):
    config = tiny_config(tmp_path, backbone="inception_v3", image_size=64, data=str(tmp_path))
    with pytest.raises(
        ValueError, match=r"`image_size` 64 is smaller than backbone 'inception_v3' allows \(minimum 75px\)"
    ):
        check_config(config)


def test_missing_data_dir(tmp_path):
    config = tiny_config(tmp_path, data=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="Data not found"):
        check_config(config)


def test_missing_weights_file(tmp_path):
    config = tiny_config(tmp_path, weights=str(tmp_path / "missing.weights.h5"), data=str(tmp_path))
    with pytest.raises(ValueError, match="an existing weights file"):
        check_config(config)


def test_single_class_fails_before_training(tmp_path):
    root = write_image_folder(tmp_path / "data", num_classes=1, per_class=6)
    config = tiny_config(tmp_path, data=root)
    with pytest.raises(ValueError, match=r"at least 2 classes. Received: 1 \(\['class_0'\]\)"):
        train(config)
    assert not (tmp_path / "run").exists()  # Nothing was written: it failed before any work.


def test_token_pooling_is_refused_for_images(tmp_path):
    config = tiny_config(tmp_path, pooling="cls", data=str(tmp_path))
    with pytest.raises(ValueError, match=r"`pooling` for images must be 'avg' or 'max'.*Received: pooling='cls'"):
        check_config(config)


def test_auto_modality_picks_text_for_text_encoders(tmp_path):
    from keras_tl.core.contract import modality

    def is_text(config):
        return modality.of(config).name == "text"

    assert is_text(tiny_config(tmp_path, backbone="minilm_l6"))
    assert is_text(tiny_config(tmp_path, backbone="bert_base_en_uncased"))
    assert not is_text(tiny_config(tmp_path, backbone="mobilenet_v2"))
    assert is_text(tiny_config(tmp_path, backbone="mobilenet_v2", modality="text"))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(weights="imagenet"), r"`weights` is 'pretrained' for every backbone's own pretrained weights"),
        (dict(unfreeze="from:typo"), r"unfreeze='from:typo' names no layer or block.*block_16"),
        (dict(unfreeze="blocks:99"), r"unfreeze='blocks:99' but the backbone has 16 blocks: \['block_1'"),
    ],
)
def test_late_errors_now_fail_before_any_file_is_written(tmp_path, overrides, message):
    """Each of these used to fail only after the run directory (or phase 1) existed."""
    root = write_image_folder(tmp_path / "data", num_classes=2, per_class=6)
    config = tiny_config(tmp_path, data=root, **overrides)
    with pytest.raises(ValueError, match=message):
        train(config)
    assert not (tmp_path / "run").exists()


def test_an_image_run_refuses_audio_augmentation_parameters_before_work(tmp_path):
    import keras_tl

    config = TrainConfig(
        data=str(tmp_path),
        backbone="mobilenet_v3_small",
        weights="none",
        out=str(tmp_path / "run"),
        augment="light",
        augment_params={"gain_db": 3},
    )
    with pytest.raises(keras_tl.ConfigError, match=r"Unknown image augmentation parameters \['gain_db'\]"):
        keras_tl.train(config)
    assert not (tmp_path / "run").exists()
