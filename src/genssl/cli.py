"""The ``genssl`` command: one subcommand per workflow stage, plus store and config utilities.

Every stage command reads the study configuration (``--config`` file, or ``--config-json`` as passed by the
Snakemake rules), validates it against ``src/genssl/schema.yaml`` before doing any work, and reports bad input as
one message naming the problem (exit status 2 for configuration errors, 1 for other input errors).
"""

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from genssl import __version__, failures, stages
from genssl.config import load_config
from genssl.errors import ConfigError, GensslError
from genssl.study import Run

if TYPE_CHECKING:
    from genssl.evaluate.encoder import Encoding

log = logging.getLogger("genssl")

#: The help of every command's --threads.
THREADS_HELP = "CPU threads of torch and of the BLAS/OpenMP pools (default: the libraries' choice)"


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--config", default="config/config.yaml", metavar="PATH", help="study configuration (default: %(default)s)"
    )
    group.add_argument("--config-json", metavar="JSON", help="study configuration as a JSON/YAML string")


def _add_encoding_options(parser: argparse.ArgumentParser, method_help: str, method_required: bool = False) -> None:
    """The options of a command that encodes datasets with a run's encoder: the datasets, the run, the encoder and
    the stores."""
    parser.add_argument(
        "--downstream", nargs="+", required=True, help="the datasets to encode (keys of `datasets`), one process"
    )
    parser.add_argument("--method", required=method_required, help=method_help)
    parser.add_argument(
        "--run", default="standard", help="the run's directory: its augmentation, -seed{s} for a replicate"
    )
    parser.add_argument("--encoder", help=f"encoder file (default: the run's {stages.PRETRAIN}/{stages.ENCODER})")
    parser.add_argument(
        "--data", nargs="+", help=f"store of each downstream dataset (default: {stages.data_dir('{downstream}')})"
    )


def _writable(*paths: str | Path | None) -> None:
    """Refuse output paths that cannot be written, before any work (:func:`genssl.atomic.check_writable`)."""
    from genssl.atomic import check_writable

    for path in paths:
        if path is not None:
            check_writable(path)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    if args.config_json is not None:
        return load_config(text=args.config_json)
    return load_config(args.config)


def _cmd_prepare(args: argparse.Namespace) -> int:
    from genssl.data.prepare import prepare_dataset
    from genssl.stages import data_dir

    config = _config(args)
    out = args.out or data_dir(args.dataset)
    _writable(out)
    prepare_dataset(config, args.dataset, out, workers=args.workers)
    return 0


def _pretraining_data(args: argparse.Namespace, config: dict[str, Any]) -> str:
    from genssl.stages import data_dir

    return args.data or data_dir(config["pretrain"]["dataset"])


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from genssl.allocator import keep_freed_memory
    from genssl.stages import augment_dir, pretrain_dir
    from genssl.study import study_run
    from genssl.train.trainer import pretrain

    config = _config(args)
    run = study_run(config, args.method, args.augmentation, args.seed)
    keep_freed_memory()
    generator = config["augmentations"][run.augmentation].get("generator")
    variants = args.variants or (augment_dir(config, generator) if generator is not None else None)
    out = args.out or pretrain_dir(config, run)
    _writable(Path(out) / "encoder.safetensors")
    pretrain(config, run.method, run.augmentation, _pretraining_data(args, config), out, variants, run.seed)
    return 0


def _cmd_init_encoder(args: argparse.Namespace) -> int:
    from genssl.methods import METHODS
    from genssl.models.initialisation import write_initial_encoder
    from genssl.stages import init_dir
    from genssl.study import INIT, make_run, seeds

    config = _config(args)
    if args.method not in METHODS:  # the rule passes the backbone's slice only: methods.* is not in it
        raise ConfigError(f"--method: unknown method {args.method!r}; known: {', '.join(sorted(METHODS))}")
    run = make_run(config, args.method, INIT, seeds(config)[0] if args.seed is None else args.seed)
    out = args.out or init_dir(config, run)
    _writable(out)
    write_initial_encoder(config, run.method, run.seed, out)
    return 0


def _cmd_train_generator(args: argparse.Namespace) -> int:
    from genssl.config import generator_config
    from genssl.generate.registry import TRAINED, train_generator
    from genssl.stages import conditioning_encoder_file, generator_dir

    config = _config(args)
    gen = generator_config(config, args.generator)
    if gen["backend"] not in TRAINED:
        raise ConfigError(f"generators.{args.generator}: backend {gen['backend']} is not trained in the workflow")
    encoder = args.encoder or conditioning_encoder_file(config, args.generator)
    out = args.out or generator_dir(config, args.generator)
    _writable(out)
    train_generator(
        args.generator, gen, config["seed"], Path(_pretraining_data(args, config)), Path(encoder), Path(out)
    )
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from genssl.config import generator_config
    from genssl.generate import generation
    from genssl.generate.registry import TRAINED
    from genssl.stages import augment_dir, generator_dir

    config = _config(args)
    data = _pretraining_data(args, config)
    out = args.out or augment_dir(config, args.generator)
    _writable(out, f"{out}.shards/shard")
    gen = generator_config(config, args.generator)
    weights = args.weights
    if weights is None and gen["backend"] in TRAINED:
        weights = generator_dir(config, args.generator)
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


def _per_item(values: list[str] | None, items: list[str], option: str, what: str) -> list[str | None]:
    """``values`` of a list option, one per item of ``items`` (``None`` each when not given)."""
    if values is None:
        return [None] * len(items)
    if len(values) != len(items):
        raise ConfigError(f"{option}: give one {what} per item ({len(items)}), got {len(values)}")
    return list(values)


def _encodings(
    args: argparse.Namespace, files: list[str] | None, option: str, default: Callable[[str], str]
) -> list["Encoding"]:
    """Each ``--downstream`` dataset with its store (``--data``, else its prepared store) and the feature file to
    write (``files``, given with ``option``, else ``default(dataset)``)."""
    from genssl.evaluate.encoder import Encoding
    from genssl.stages import data_dir

    datas = _per_item(args.data, args.downstream, "--data", "store")
    outs = _per_item(files, args.downstream, option, "feature file")
    return [
        Encoding(dataset, data or data_dir(dataset), out or default(dataset))
        for dataset, data, out in zip(args.downstream, datas, outs, strict=True)
    ]


def _run_encoder(args: argparse.Namespace, config: dict[str, Any]) -> tuple[Run, str]:
    """The run of ``--method`` and ``--run``, and its encoder file (``--encoder``, else the run's)."""
    from genssl.stages import encoder_file
    from genssl.study import run_from_directory

    run = run_from_directory(args.method, args.run, config)
    return run, args.encoder or encoder_file(config, run)


def _cmd_features(args: argparse.Namespace) -> int:
    from genssl.evaluate.features import extract_conditioning_features, extract_encoder_features
    from genssl.stages import conditioning_features_file, features_file

    config = _config(args)
    if args.generator is not None:
        encodings = _encodings(args, args.out, "--out", lambda d: conditioning_features_file(config, args.generator, d))
        _writable(*(encoding.features for encoding in encodings))
        for dataset, store, out in encodings:
            extract_conditioning_features(config, dataset, args.generator, store, out, args.weights)
        return 0
    if args.method is None:
        raise ConfigError("genssl features: give --method (and --run) or --generator")
    run, encoder = _run_encoder(args, config)
    encodings = _encodings(args, args.out, "--out", lambda d: features_file(config, run, d))
    _writable(*(encoding.features for encoding in encodings))
    for dataset, store, out in encodings:
        extract_encoder_features(config, dataset, encoder, store, out)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from genssl.evaluate.encoder import evaluate_encoder
    from genssl.stages import features_file, probe_file

    config = _config(args)
    run, encoder = _run_encoder(args, config)
    encodings = _encodings(args, args.features, "--features", lambda d: features_file(config, run, d))
    probed = args.probe or args.downstream
    outs = _per_item(args.out, probed, "--out", "result file")
    probes = {dataset: out or probe_file(config, run, dataset) for dataset, out in zip(probed, outs, strict=True)}
    _writable(*(encoding.features for encoding in encodings), *probes.values())
    evaluate_encoder(config, encoder, encodings, probes)
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from genssl.evaluate.probe import run_probe

    config = _config(args)
    outs = _per_item(args.out, args.features, "--out", "result file")
    datas = _per_item(args.data, args.features, "--data", "store")
    _writable(*outs)
    for features, out, data in zip(args.features, outs, datas, strict=True):
        run_probe(config, features, out, args.encoder, data)
    return 0


def _cmd_similarity(args: argparse.Namespace) -> int:
    from genssl.evaluate.similarity.stage import run_similarity

    config = _config(args)
    encoders = {}
    for item in args.features:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"genssl similarity: --features takes NAME=PATH items, got {item!r}")
        encoders[name] = path
    _writable(args.out)
    run_similarity(config, encoders, args.out)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from genssl.report.stage import build_report

    config = _config(args)
    _writable(args.out)
    build_report(config, args.results, args.out)
    return 0


def _cmd_dvc_stages(args: argparse.Namespace) -> int:
    from genssl.dvc_stages import dvc_stages

    config = load_config(args.config)
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


def _cmd_status(args: argparse.Namespace) -> int:
    from genssl.status import remove, statuses

    found = statuses(load_config(args.config), args.root)
    if args.current_targets:
        print("\n".join(s.artifact.target for s in found if s.state == "current"))
        return 0
    for status in found:
        print(f"{status.state:<8} {status.artifact.directory}" + (f": {status.reason}" if status.reason else ""))
        if args.remove_stale and status.state == "stale":
            remove(args.root, status)
            print(f"         removed {status.artifact.directory}: Snakemake remakes it")
    stale = [s.artifact.directory for s in found if s.state == "stale"]
    if args.check and stale:
        raise GensslError(
            f"{len(stale)} tracked artifact(s) do not match {args.config}: {', '.join(stale)}; rerun the workflow "
            "(snakemake) before pushing them"
        )
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
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser.add_argument("--attempt", type=int, default=1, help="the attempt of this job (Snakemake's; > 1 for a retry)")
    parser.add_argument(
        "--failure-record",
        metavar="PATH",
        help="remember an error a retry cannot fix here; a retry (--attempt > 1) then ends at once with it",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    prepare = commands.add_parser("prepare", help=f"prepare a dataset into an image store ({stages.DATA}/)")
    _add_config_options(prepare)
    prepare.add_argument("--dataset", required=True, help="dataset name, a key of `datasets` in the configuration")
    prepare.add_argument("--out", help=f"store directory (default: {stages.DATA})")
    prepare.add_argument("--workers", type=int, default=1, help="decoding processes (default: %(default)s)")
    prepare.set_defaults(func=_cmd_prepare)

    pre = commands.add_parser(
        "pretrain",
        help=f"pretrain a method ({stages.PRETRAIN}/); resumes from its checkpoint",
    )
    _add_config_options(pre)
    pre.add_argument("--method", required=True, help="method name, a key of `methods` in the configuration")
    pre.add_argument("--augmentation", default="standard", help="a key of `augmentations` (default: %(default)s)")
    pre.add_argument("--data", help=f"store of pretrain.dataset (default: {stages.DATA})")
    pre.add_argument("--out", help=f"output directory (default: {stages.PRETRAIN}, run = augmentation[-seedS])")
    pre.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    pre.add_argument("--variants", help=f"variant store of a generative augmentation (default: {stages.AUGMENT})")
    pre.add_argument(
        "--seed",
        type=int,
        help="the run's seed, one of its augmentation's `seeds` or a conditioning run's (default: the first)",
    )
    pre.set_defaults(func=_cmd_pretrain)

    init = commands.add_parser(
        "init-encoder", help=f"a method's untrained initialisation as an encoder ({stages.INIT_ENCODER}/)"
    )
    _add_config_options(init)
    init.add_argument("--method", required=True, help="method name, a key of `methods` in the configuration")
    init.add_argument("--seed", type=int, help="the seed of the runs it initialises (default: the first of `seeds`)")
    init.add_argument("--out", help=f"output directory (default: {stages.INIT_ENCODER}, run = init[-seedS])")
    init.set_defaults(func=_cmd_init_encoder)

    train_gen = commands.add_parser("train-generator", help=f"train a generator of the workflow ({stages.GENERATOR}/)")
    _add_config_options(train_gen)
    train_gen.add_argument("--generator", required=True, help="a key of `generators` in the configuration")
    train_gen.add_argument("--data", help=f"store of pretrain.dataset (default: {stages.DATA})")
    train_gen.add_argument("--encoder", help="conditioning encoder file (default: from generators.*.conditioning)")
    train_gen.add_argument("--out", help=f"output directory (default: {stages.GENERATOR})")
    train_gen.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    train_gen.set_defaults(func=_cmd_train_generator)

    gen = commands.add_parser(
        "generate",
        help=f"generate K variants of every training image ({stages.AUGMENT}/); resumes by shard",
    )
    _add_config_options(gen)
    gen.add_argument("--generator", required=True, help="a key of `generators` in the configuration")
    gen.add_argument("--data", help=f"store of pretrain.dataset (default: {stages.DATA})")
    gen.add_argument("--weights", help=f"a trained generator (default: {stages.GENERATOR})")
    gen.add_argument("--out", help=f"variant store (default: {stages.AUGMENT}); shards in OUT.shards")
    step = gen.add_mutually_exclusive_group()
    step.add_argument("--shard", type=int, help="write only this shard (0-based) into OUT.shards/")
    step.add_argument("--gather", action="store_true", help="only gather the finished shards into OUT")
    step.add_argument(
        "--estimate",
        action="store_true",
        help="print the projected device-hours and disk size of the whole store from a short timed batch; "
        "generate nothing",
    )
    gen.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    gen.set_defaults(func=_cmd_generate)

    feat = commands.add_parser(
        "features",
        help=f"frozen-encoder features of a downstream dataset's splits ({stages.FEATURES})",
    )
    _add_config_options(feat)
    _add_encoding_options(feat, method_help="the pretraining run's method (or give --generator)")
    feat.add_argument("--generator", help="encode with this generator's conditioning encoder instead of a run's")
    feat.add_argument("--weights", help="the trained generator's directory (for --generator of a trained backend)")
    feat.add_argument(
        "--out",
        nargs="+",
        help=f"feature file to write per downstream dataset (default: {stages.FEATURES}, with --generator "
        f"{stages.CONDITIONING_FEATURES})",
    )
    feat.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    feat.set_defaults(func=_cmd_features)

    probe = commands.add_parser("probe", help=f"linear probe and kNN accuracy of a feature file ({stages.PROBE})")
    _add_config_options(probe)
    probe.add_argument("--features", nargs="+", required=True, help="feature files written by genssl features")
    probe.add_argument("--out", nargs="+", required=True, help="result JSON to write per feature file")
    probe.add_argument("--encoder", help="[probe.protocol augmented] the encoder the features were extracted with")
    probe.add_argument("--data", nargs="+", help="[probe.protocol augmented] store of each feature file's dataset")
    probe.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    probe.set_defaults(func=_cmd_probe)

    evaluate = commands.add_parser(
        "evaluate",
        help=f"an encoder's features ({stages.FEATURES}) and probes ({stages.PROBE}) in one process: genssl "
        "features, then genssl probe",
    )
    _add_config_options(evaluate)
    _add_encoding_options(evaluate, method_help="the pretraining run's method", method_required=True)
    evaluate.add_argument(
        "--features", nargs="+", help=f"feature file to write per downstream dataset (default: {stages.FEATURES})"
    )
    evaluate.add_argument(
        "--probe", nargs="+", help="the datasets to probe, among --downstream (default: all of --downstream)"
    )
    evaluate.add_argument("--out", nargs="+", help=f"result JSON to write per probed dataset (default: {stages.PROBE})")
    evaluate.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    evaluate.set_defaults(func=_cmd_evaluate)

    sim = commands.add_parser("similarity", help=f"CKA and Procrustes distance between encoders ({stages.SIMILARITY}/)")
    _add_config_options(sim)
    sim.add_argument("--features", nargs="+", required=True, metavar="NAME=PATH", help="encoders' feature files")
    sim.add_argument("--out", required=True, help="output directory")
    sim.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    sim.set_defaults(func=_cmd_similarity)

    rep = commands.add_parser("report", help="the study's report: tables, tidy results, metrics, figures")
    _add_config_options(rep)
    rep.add_argument("--results", default=".", help="the directory holding results/ (default: .)")
    rep.add_argument("--out", default=stages.REPORT, help="output directory (default: %(default)s)")
    rep.set_defaults(func=_cmd_report)

    dvc = commands.add_parser("dvc-stages", help="write dvc.yaml: a DVC stage per expensive artifact of the study")
    dvc.add_argument("--config", default="config/config.yaml", metavar="PATH", help="study configuration file")
    dvc.add_argument("--out", default="dvc.yaml", help="where to write it (- for stdout; default: %(default)s)")
    dvc.set_defaults(func=_cmd_dvc_stages)

    status = commands.add_parser(
        "status", help="is each tracked artifact what the configuration and its inputs would produce now?"
    )
    status.add_argument("--config", default="config/config.yaml", metavar="PATH", help="study configuration file")
    status.add_argument("--root", default=".", help="the directory holding results/ (default: .)")
    what = status.add_mutually_exclusive_group()
    what.add_argument("--current-targets", action="store_true", help="print the Snakemake targets of current ones")
    what.add_argument("--remove-stale", action="store_true", help="delete stale artifacts (Snakemake remakes them)")
    what.add_argument("--check", action="store_true", help="exit 1 when an artifact is stale (before dvc push)")
    status.set_defaults(func=_cmd_status)

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


#: The environment variables that size a BLAS/OpenMP pool when its library loads.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def thread_limit(threads: int) -> contextlib.AbstractContextManager[Any]:
    """The CPU threads of a command (``--threads N``, a rule's ``threads:``): torch's intra-op pool, and the
    BLAS/OpenMP pools of NumPy and scikit-learn for the command's duration: those already loaded through threadpoolctl,
    those loaded later (SciPy's OpenBLAS, when the probe first imports scikit-learn) through the variables they read
    when they load (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``). Their default, one thread
    per core, makes small linear algebra slow and oversubscribes the cores of jobs that run side by side (the probe's
    64-dim logistic regression on digits: 2.1 s with OpenBLAS's 2 threads, 0.17 s with 1, on an idle 2-core CPU)."""
    if not threads:
        return contextlib.nullcontext()
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    return threadpool_limits(limits=threads)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    record = args.failure_record
    if record is not None and args.attempt > 1 and (failed := failures.previous(record)) is not None:
        print(
            f"genssl: error: {failed['message']} (attempt {args.attempt - 1} of this job ended with this error, which "
            "a retry cannot fix: not retried)",
            file=sys.stderr,
        )
        return failed["status"]
    if record is not None:
        failures.forget(record)
    try:
        with thread_limit(getattr(args, "threads", 0)):
            return args.func(args)
    except GensslError as err:
        if args.debug:
            raise
        status, kind = (2, "configuration error") if isinstance(err, ConfigError) else (1, "error")
        print(f"genssl: {kind}: {err}", file=sys.stderr)
        if record is not None:
            failures.remember(record, str(err), status)
        return status


if __name__ == "__main__":
    sys.exit(main())
