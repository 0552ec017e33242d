"""What each `keras-tl` command does, after its arguments parsed: checks first (still no TensorFlow),
then the work."""

import dataclasses
import json
import os

from keras_tl.cli.parser import AUTO_OUT, RANK_OUT
from keras_tl.core.contract.errors import ConfigError
from keras_tl.workflow.checks import check_auto, check_config, check_top_k


def _train_config(args):
    """The TrainConfig of `--config` and the flags (flags win), validated: still no TensorFlow."""
    from keras_tl.core.contract.config import TrainConfig

    values = {}
    if args.config:
        values.update(TrainConfig.from_yaml(args.config).to_dict())
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values.update({k: v for k, v in vars(args).items() if k in fields and v is not None})
    return TrainConfig.from_dict(values)


def _checked(args):
    """`_train_config(args)`, checked as every run checks it first (keras-free)."""
    config = _train_config(args)
    check_config(config)
    return config


def _start_tensorflow(config=None):
    """TensorFlow started quietly; a multi-worker strategy first, which TensorFlow allows only then."""
    from keras_tl.core.train import distribute
    from keras_tl.core.utils import quiet

    quiet.start_tensorflow(first=lambda: distribute.start(getattr(config, "distribute", None)))


def run(args):
    command = args.command
    if command == "backbones":
        return _list_backbones(args)
    if command == "assets":
        from keras_tl import assets

        if args.action == "install":
            assets.install()
        print("\n".join(assets.status()))
        return 0
    if command == "serving-config":
        from keras_tl.core.export import serving

        print(serving.models_config(args.root, base_path=args.base_path), end="")
        return 0
    if command == "train":
        return _train(args)
    if command == "compare":
        from keras_tl.workflow.checks import check_top  # Keras-free: answered before TensorFlow starts.

        names = _names(args.backbones)
        check_top(names, args.top)
        config = _train_config(args)
        _start_tensorflow(config)
        from keras_tl import workflow

        workflow.compare_backbones(config, names, overwrite=args.overwrite, top=args.top)
        return 0
    if command == "auto":
        return _auto(args)
    if command == "rank":
        names = _names(args.backbones)
        if args.max_examples is not None and args.max_examples < 2:
            raise ConfigError(f"`--max-examples` must be an integer >= 2. Received: {args.max_examples}")
        config = _train_config(args)
        for name in names:  # Every backbone, before any work.
            check_config(dataclasses.replace(config, backbone=name))
        _start_tensorflow()
        from keras_tl import workflow

        out = args.out or RANK_OUT
        workflow.rank(config, names, random_twins=args.random_twins, out=out, max_examples=args.max_examples)
        print(f"rank table: {os.path.join(out, 'rank.md')} (and rank.json)")
        return 0
    if command == "domain-shift":
        config = _checked(args)
        from keras_tl.core.contract.files import check_data_path

        check_data_path(args.target_data, expected="a folder or manifest, as --data")
        _start_tensorflow()
        from keras_tl import workflow

        print(json.dumps(workflow.domain_shift(config, args.target_data)))
        return 0
    if command == "lr-find":
        config = _checked(args)
        if args.steps < 2 or not 0 < args.min_lr < args.max_lr:
            raise ConfigError(
                f"`--steps` must be >= 2 and 0 < `--min-lr` < `--max-lr`. Received: --steps "
                f"{args.steps}, --min-lr {args.min_lr}, --max-lr {args.max_lr}"
            )
        _start_tensorflow()
        from keras_tl import workflow

        workflow.lr_find(
            config, phase=args.phase, min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps, png=args.png
        )
        return 0
    if command == "show-batch":
        config = _train_config(args)
        check_config(dataclasses.replace(config, weights="none"))  # Samples come before any backbone.
        _start_tensorflow()
        from keras_tl import workflow

        print(workflow.show_batch(config, args.png))
        return 0
    if command == "evaluate":
        _check_run_dir(args.run_dir)
        _start_tensorflow()
        from keras_tl import workflow
        from keras_tl.core.evaluation.evaluate import format_metrics

        print(format_metrics(workflow.evaluate_run(args.run_dir)))
        return 0
    if command == "predict":
        return _predict(args)
    if command == "export":
        from keras_tl.workflow.checks import check_export, check_export_name

        check_export(args.format, args.quantize, args.int8_io, args.keep_versions)
        check_export_name(args.name or os.path.basename(os.path.normpath(args.run_dir)))
        _check_run_dir(args.run_dir)
        _check_out(args.out)
        _start_tensorflow()
        from keras_tl import workflow

        result = workflow.export_run(
            args.run_dir,
            args.format,
            out=args.out,
            name=args.name,
            quantize=args.quantize,
            keep_versions=args.keep_versions,
            int8_io=args.int8_io,
        )
        print(
            json.dumps(
                {
                    "format": result.format,
                    "path": result.path,
                    "version": result.version,
                    "size_bytes": result.size_bytes,
                    "check": result.check,
                }
            )
        )
        return 0
    if command == "import-weights":
        from keras_tl.weights import imports

        if args.list or not args.name:
            for name in imports.names():
                importer = imports.get(name)
                print(f"{name:28} -> backbone {importer.backbone} (from {importer.package}; {importer.licence})")
            return 0
        importer = imports.get(args.name)
        imports.locate(args.name)  # The package is installed, before TensorFlow starts.
        out = args.out or f"{args.name}.weights.h5"
        _start_tensorflow()
        from keras_tl.core.contract import modality as modalities
        from keras_tl.core.contract import registry

        print(modalities.get(registry.get(importer.backbone).modality).import_weights(args.name, out))
        return 0
    if command == "quickstart":
        if args.labels_per_class < 1:
            raise ConfigError(f"`--labels-per-class` must be >= 1. Received: {args.labels_per_class}")
        _check_out(args.out)
        _start_tensorflow()
        from keras_tl import quickstart

        print(
            quickstart.summary(
                quickstart.run(args.out, labels_per_class=args.labels_per_class, overwrite=args.overwrite)
            )
        )
        return 0
    raise AssertionError(command)  # argparse only lets known commands through.


def _names(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"`--backbones` must name at least one backbone. Received: {text!r}")
    return names


def _check_run_dir(run_dir):
    if not os.path.isfile(os.path.join(run_dir, "config.yaml")):
        raise ConfigError(
            f"{run_dir!r} is not a keras-tl run directory (no config.yaml). Expected the --out folder "
            "of a finished `keras-tl train`."
        )


def _check_out(out):
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"`--out` must be a folder. Received: --out {out!r}, which is a file.")


def _train(args):
    if args.resume:
        from keras_tl.workflow.rundir import load_config

        _check_run_dir(args.resume)
        config, resume = load_config(args.resume), True
        check_config(config)
    else:
        config, resume = _checked(args), False
    _start_tensorflow(config)
    from keras_tl import workflow

    result = workflow.train(config, overwrite=args.overwrite, resume=resume)
    print(
        f"run directory: {result.run_dir}  test_accuracy={result.metrics['test_accuracy']:.4f}"
        f"  macro_f1={result.metrics['macro_f1']:.4f}"
    )
    return 0


def _auto(args):
    config = _train_config(args)
    if args.out is None:
        config = dataclasses.replace(config, out=AUTO_OUT)
    backbones = _names(args.backbones) if args.backbones is not None else None
    check_auto(  # Every flag and candidate, before TensorFlow starts.
        config,
        budget=args.budget,
        target=args.target,
        max_latency_ms=args.max_latency_ms,
        top=args.top,
        backbones=backbones,
        max_trials=args.max_trials,
    )
    _start_tensorflow(config)
    from keras_tl import workflow

    result = workflow.auto(
        config,
        budget=args.budget,
        target=args.target,
        max_latency_ms=args.max_latency_ms,
        backbones=backbones,
        top=args.top,
        max_trials=args.max_trials,
        overwrite=args.overwrite,
    )
    print(
        f"auto run: {result.run_dir}  backbone={result.chosen.backbone}  test_accuracy="
        f"{result.metrics['test_accuracy']:.4f}  {result.export['format']}={result.export['path']}"
        + (f"  latency_ms={result.export['latency_ms_batch1']:.2f}" if "latency_ms_batch1" in result.export else "")
        + f"  seconds={result.seconds:.0f}/{result.budget:.0f}"
    )
    return 0


def _predict(args):
    check_top_k(args.top_k)  # The CLI names it --top-k.
    if args.server:
        from keras_tl.core.export import serving

        if not args.model:
            raise ConfigError("`predict --server` needs --model NAME (the served model's name).")
        serving.check_server(args.server)
        name = args.modality or serving.guess_modality(args.paths)
        answers = serving.predict(args.server, args.model, args.paths, modality=name, version=args.version)
        for item, answer in zip(args.paths, answers):
            print(json.dumps({name: item, **answer}))
        return 0
    if len(args.paths) < 2:
        raise ConfigError("`predict` needs RUN_DIR ITEM... (or --server URL --model NAME ITEM...).")
    run_dir, items = args.paths[0], args.paths[1:]
    _check_run_dir(run_dir)
    from keras_tl.core.contract.modality import get
    from keras_tl.workflow.rundir import load_config

    modality = get(load_config(run_dir).modality)
    items = modality.read_items(items)  # Unreadable items are named before TensorFlow starts.
    _start_tensorflow()
    from keras_tl import workflow

    ranked = lambda pairs: [{"label": l, "probability": round(p, 4)} for l, p in pairs]  # noqa: E731
    for item, (top, label) in zip(items, workflow.labelled_predictions(run_dir, items, args.top_k)):
        answer = {"heads": {h: ranked(t) for h, t in top.items()}} if isinstance(top, dict) else {"top_k": ranked(top)}
        print(json.dumps({modality.name: item, **({"label": label} if label is not None else {}), **answer}))
    return 0


def _list_backbones(args):
    from keras_tl.core.contract import registry

    rows = []
    for name in registry.names(args.pattern, modality=args.modality):
        spec = registry.get(name)
        status = registry.weights_status(spec)
        if args.offline and status != registry.HERE:
            continue
        rows.append(
            (
                spec.name,
                spec.modality,
                status,
                spec.feature_dim or "",
                spec.default_size or "",
                spec.description or spec.preprocessing,
            )
        )
    print(f"{'name':26}{'modality':10}{'weights':10}{'features':>9}{'size':>6}  about")
    for name, modality, status, dim, size, about in rows:
        print(f"{name:26}{modality:10}{status:10}{dim:>9}{size:>6}  {about}")
    print(
        f"weights: {registry.HERE} = on this machine (works offline); {registry.DOWNLOAD} = fetched by Keras on "
        f"first use; {registry.INSTALL} = `keras-tl assets install` brings them; {registry.PRESET} = KerasHub "
        "downloads the preset"
    )
    if args.presets:
        from keras_tl.text import presets

        print("KerasHub text presets (downloaded on first use): " + ", ".join(presets.hub_presets()))
    else:
        print(
            "Also: KerasHub preset names and handles (kaggle://..., hf://...) and local preset folders "
            "(`--presets` lists the text ones)."
        )
    return 0
