"""The ``genssl`` command: one subcommand per workflow stage, plus store and config utilities.

Every stage command reads the study configuration (``--config`` file, or ``--config-json`` as passed by the
Snakemake rules), validates it against ``config/schema.yaml`` before doing any work, and reports bad input as
one message naming the problem (exit status 2 for configuration errors, 1 for other input errors).
"""

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from genssl import __version__
from genssl.config import load_config
from genssl.errors import ConfigError, GensslError

log = logging.getLogger("genssl")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--config", default="config/config.yaml", metavar="PATH", help="study configuration (default: %(default)s)"
    )
    group.add_argument("--config-json", metavar="JSON", help="study configuration as a JSON/YAML string")


def _config(args: argparse.Namespace) -> dict[str, Any]:
    if args.config_json is not None:
        return load_config(text=args.config_json)
    return load_config(args.config)


def _cmd_prepare(args: argparse.Namespace) -> int:
    from genssl.data.prepare import prepare_dataset

    config = _config(args)
    out = args.out or f"results/data/{args.dataset}"
    prepare_dataset(config, args.dataset, out, workers=args.workers)
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    import torch

    from genssl.allocator import keep_freed_memory
    from genssl.study import Run, pretrain_dir, seeds
    from genssl.train.trainer import pretrain

    config = _config(args)
    keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = config["pretrain"]["dataset"]
    data = args.data or f"results/data/{dataset}"
    seed = config["seed"] if args.seed is None else args.seed
    run = Run(args.method, args.augmentation, seed, seed == seeds(config)[0])
    out = args.out or pretrain_dir(config, run)
    pretrain(config, args.method, args.augmentation, data, out, variants_dir=args.variants, seed=seed)
    return 0


def _cmd_train_generator(args: argparse.Namespace) -> int:
    import torch

    from genssl.config import generator_config
    from genssl.generate.registry import TRAINED, train_generator
    from genssl.study import conditioning_encoder_file

    config = _config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = generator_config(config, args.generator)
    if gen["backend"] not in TRAINED:
        raise ConfigError(f"generators.{args.generator}: backend {gen['backend']} is not trained in the workflow")
    dataset = config["pretrain"]["dataset"]
    encoder = args.encoder or conditioning_encoder_file(config, args.generator)
    data = args.data or f"results/data/{dataset}"
    out = args.out or f"results/generators/{dataset}/{args.generator}"
    train_generator(args.generator, gen, config["seed"], Path(data), Path(encoder), Path(out))
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from genssl.config import generator_config
    from genssl.generate import generation
    from genssl.generate.registry import TRAINED

    config = _config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = config["pretrain"]["dataset"]
    data = args.data or f"results/data/{dataset}"
    out = args.out or f"results/augment/{dataset}/{args.generator}"
    gen = generator_config(config, args.generator)
    weights = args.weights
    if weights is None and gen["backend"] in TRAINED:
        weights = f"results/generators/{dataset}/{args.generator}"
    if args.estimate:
        from genssl.generate.estimate import estimate

        plan = generation.GenerationPlan(config, args.generator, data, None if weights is None else Path(weights))
        print(estimate(plan).summary())
    elif args.shard is not None:
        generation.generate_shard(config, args.generator, args.shard, data, out, weights)
    elif args.gather:
        generation.gather_store(config, args.generator, data, out, weights)
    else:
        generation.generate(config, args.generator, data, out, weights)
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    import torch

    from genssl.evaluate.features import extract_conditioning_features, extract_encoder_features
    from genssl.study import conditioning_features_file, features_file, pretrain_dir, run_from_directory

    config = _config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = args.data or f"results/data/{args.downstream}"
    if args.generator is not None:
        out = args.out or conditioning_features_file(config, args.generator, args.downstream)
        extract_conditioning_features(config, args.downstream, args.generator, data, out, args.weights)
        return 0
    if args.method is None:
        raise ConfigError("genssl features: give --method (and --augmentation) or --generator")
    run = run_from_directory(args.method, args.augmentation, config)
    encoder = args.encoder or f"{pretrain_dir(config, run)}/encoder.safetensors"
    out = args.out or features_file(config, run, args.downstream)
    extract_encoder_features(config, args.downstream, encoder, data, out)
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    import torch

    from genssl.evaluate.probe import run_probe

    config = _config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_probe(config, args.features, args.out, args.encoder, args.data)
    return 0


def _cmd_similarity(args: argparse.Namespace) -> int:
    import torch

    from genssl.evaluate.similarity.stage import run_similarity

    config = _config(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    encoders = {}
    for item in args.features:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"genssl similarity: --features takes NAME=PATH items, got {item!r}")
        encoders[name] = path
    run_similarity(config, encoders, args.out)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from genssl.report.stage import build_report

    build_report(_config(args), args.results, args.out)
    return 0


def _cmd_dvc_stages(args: argparse.Namespace) -> int:
    from genssl.dvc_stages import dvc_stages, tracked_targets

    config = load_config(args.config)
    if args.targets:
        print("\n".join(tracked_targets(config)))
        return 0
    raw = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
    text = (
        f"# Generated by `genssl dvc-stages --config {args.config}` (README: DVC); regenerate it after changing "
        "the study.\n" + yaml.safe_dump(dvc_stages(config, raw, args.config), sort_keys=False, width=120)
    )
    if args.out == "-":
        print(text, end="")
    else:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


def _cmd_store_verify(args: argparse.Namespace) -> int:
    from genssl.store import verify_store

    status = 0
    for path in args.paths:
        problems = verify_store(path)
        if problems:
            status = 1
            print(f"{path}: {len(problems)} problem(s)")
            for line in problems:
                print(f"  {line}")
        else:
            print(f"{path}: ok")
    return status


def _cmd_store_info(args: argparse.Namespace) -> int:
    from genssl.store.manifest import read_manifest

    m = read_manifest(args.path)
    info = {
        "n": m["n"],
        "encoding": m["encoding"],
        "shape": m["shape"],
        "classes": len(m["classes"]),
        "splits": {k: v["n"] for k, v in m["splits"].items()},
        "shards": len(m["shards"]),
        "bytes": sum(f["bytes"] for f in m["files"].values()),
        "skipped": len(m["skipped"]),
        "source": m["provenance"].get("source"),
    }
    print(yaml.safe_dump(info, sort_keys=False), end="")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    print(yaml.safe_dump(_config(args), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genssl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"genssl {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prepare = commands.add_parser("prepare", help="prepare a dataset into an image store (results/data/{dataset}/)")
    _add_config_options(prepare)
    prepare.add_argument("--dataset", required=True, help="dataset name, a key of `datasets` in the configuration")
    prepare.add_argument("--out", help="store directory (default: results/data/{dataset})")
    prepare.add_argument("--workers", type=int, default=1, help="decoding processes (default: %(default)s)")
    prepare.set_defaults(func=_cmd_prepare)

    pre = commands.add_parser(
        "pretrain",
        help="pretrain a method (results/pretrain/{dataset}/{method}/{augmentation}/); resumes from its checkpoint",
    )
    _add_config_options(pre)
    pre.add_argument("--method", required=True, help="method name, a key of `methods` in the configuration")
    pre.add_argument("--augmentation", default="standard", help="a key of `augmentations` (default: %(default)s)")
    pre.add_argument("--data", help="store of pretrain.dataset (default: results/data/{dataset})")
    pre.add_argument("--out", help="output directory (default: results/pretrain/{dataset}/{method}/{augmentation})")
    pre.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    pre.add_argument("--variants", help="variant store of a generative augmentation (default: results/augment/...)")
    pre.add_argument("--seed", type=int, help="the run's seed, one of `seeds` (default: `seed`)")
    pre.set_defaults(func=_cmd_pretrain)

    train_gen = commands.add_parser(
        "train-generator", help="train a generator of the workflow (results/generators/{dataset}/{generator}/)"
    )
    _add_config_options(train_gen)
    train_gen.add_argument("--generator", required=True, help="a key of `generators` in the configuration")
    train_gen.add_argument("--data", help="store of pretrain.dataset (default: results/data/{dataset})")
    train_gen.add_argument("--encoder", help="conditioning encoder file (default: from generators.*.conditioning)")
    train_gen.add_argument("--out", help="output directory (default: results/generators/{dataset}/{generator})")
    train_gen.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    train_gen.set_defaults(func=_cmd_train_generator)

    gen = commands.add_parser(
        "generate",
        help="generate K variants of every training image (results/augment/{dataset}/{generator}/); resumes by shard",
    )
    _add_config_options(gen)
    gen.add_argument("--generator", required=True, help="a key of `generators` in the configuration")
    gen.add_argument("--data", help="store of pretrain.dataset (default: results/data/{dataset})")
    gen.add_argument("--weights", help="a trained generator (default: results/generators/{dataset}/{generator})")
    gen.add_argument(
        "--out", help="variant store (default: results/augment/{dataset}/{generator}); shards in OUT.shards"
    )
    step = gen.add_mutually_exclusive_group()
    step.add_argument("--shard", type=int, help="write only this shard (0-based) into OUT.shards/")
    step.add_argument("--gather", action="store_true", help="only gather the finished shards into OUT")
    step.add_argument(
        "--estimate",
        action="store_true",
        help="print the projected device-hours and disk size of the whole store from a short timed batch; "
        "generate nothing",
    )
    gen.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    gen.set_defaults(func=_cmd_generate)

    feat = commands.add_parser(
        "features",
        help="frozen-encoder features of a downstream dataset's splits "
        "(results/features/{dataset}/{method}/{augmentation}/{downstream}.npz)",
    )
    _add_config_options(feat)
    feat.add_argument("--downstream", required=True, help="the dataset to encode, a key of `datasets`")
    feat.add_argument("--method", help="the pretraining run's method")
    feat.add_argument(
        "--augmentation", default="standard", help="the run's directory: its augmentation, -seed{s} for a replicate"
    )
    feat.add_argument("--encoder", help="encoder file (default: the run's results/pretrain/.../encoder.safetensors)")
    feat.add_argument("--generator", help="encode with this generator's conditioning encoder instead of a run's")
    feat.add_argument("--weights", help="the trained generator's directory (for --generator of a trained backend)")
    feat.add_argument("--data", help="store of the downstream dataset (default: results/data/{downstream})")
    feat.add_argument("--out", help="feature file to write")
    feat.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    feat.set_defaults(func=_cmd_features)

    probe = commands.add_parser("probe", help="linear probe and kNN accuracy of a feature file (results/probe/...)")
    _add_config_options(probe)
    probe.add_argument("--features", required=True, help="feature file written by genssl features")
    probe.add_argument("--out", required=True, help="result JSON to write")
    probe.add_argument("--encoder", help="[probe.protocol augmented] the encoder the features were extracted with")
    probe.add_argument("--data", help="[probe.protocol augmented] store of the downstream dataset")
    probe.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    probe.set_defaults(func=_cmd_probe)

    sim = commands.add_parser(
        "similarity", help="CKA and Procrustes distance between encoders (results/similarity/...)"
    )
    _add_config_options(sim)
    sim.add_argument("--features", nargs="+", required=True, metavar="NAME=PATH", help="encoders' feature files")
    sim.add_argument("--out", required=True, help="output directory")
    sim.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    sim.set_defaults(func=_cmd_similarity)

    rep = commands.add_parser("report", help="the study's report: tables, tidy results, metrics, figures")
    _add_config_options(rep)
    rep.add_argument("--results", default=".", help="the directory holding results/ and benchmarks/ (default: .)")
    rep.add_argument("--out", default="results/report", help="output directory (default: %(default)s)")
    rep.set_defaults(func=_cmd_report)

    dvc = commands.add_parser("dvc-stages", help="write dvc.yaml: a DVC stage per expensive artifact of the study")
    dvc.add_argument("--config", default="config/config.yaml", metavar="PATH", help="study configuration file")
    dvc.add_argument("--out", default="dvc.yaml", help="where to write it (- for stdout; default: %(default)s)")
    dvc.add_argument("--targets", action="store_true", help="print the Snakemake targets DVC tracks instead")
    dvc.set_defaults(func=_cmd_dvc_stages)

    store = commands.add_parser("store", help="inspect and check stores").add_subparsers(
        dest="store_command", required=True, metavar="ACTION"
    )
    verify = store.add_parser("verify", help="recheck every file of a store against its manifest's sha256")
    verify.add_argument("paths", nargs="+", metavar="PATH")
    verify.set_defaults(func=_cmd_store_verify)
    info = store.add_parser("info", help="summarise a store")
    info.add_argument("path", metavar="PATH")
    info.set_defaults(func=_cmd_store_info)

    config = commands.add_parser("config", help="validate a configuration and print it with every default filled in")
    _add_config_options(config)
    config.set_defaults(func=_cmd_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"genssl: configuration error: {err}", file=sys.stderr)
        return 2
    except GensslError as err:
        print(f"genssl: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
