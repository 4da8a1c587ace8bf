"""An encoder's evaluation in one process (rule evaluate_encoder, ``genssl evaluate``) vs separate features and probe
processes, on a study's settings (default: the embedded default study), side by side.

The encoder is a method's initialisation (``init``; the same work as a trained encoder of that backbone). Two
comparisons, over ``--rounds`` alternating rounds, median seconds:

- processes: ``genssl features`` (every evaluation dataset) then ``genssl probe`` (every downstream dataset), the two
  jobs of an encoder before the merge, vs one ``genssl evaluate``; each given the config slice its rule passes,
  ``--threads 1`` and the environment Snakemake gives a job of one thread (``OMP_NUM_THREADS=1`` ...), as the rules
  run them;
- Snakemake: the encoder's evaluation forced to run again (``snakemake -c1 --forcerun``) with
  ``features.one_job_per_encoder: false`` (a features job and a probe job per dataset) vs ``true`` (one job): the
  wall time of the whole invocation (Snakemake's start-up and DAG included) and the sum of the jobs' benchmark
  seconds.

    python benchmarks/evaluation_jobs.py [--config config/config.yaml] [--method simclr] [--rounds 3] [--workdir DIR]
"""

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from genssl import stages
from genssl.config import downstream_datasets, load_config, to_json
from genssl.study import INIT, make_run, seeds

REPO = Path(__file__).resolve().parents[1]
#: What Snakemake sets for a job of one thread (snakemake.shell): the BLAS and OpenMP pools' sizes.
JOB_ENVIRONMENT = {
    name: "1"
    for name in (
        "OMP_NUM_THREADS",
        "GOTO_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    )
}


def _sliced(config: dict, keys: list[str]) -> str:
    return to_json(stages.config_slice(config, keys))


def process_commands(config: dict, method: str) -> dict[str, list[list[str]]]:
    """The command lines of one encoder's evaluation: as two processes, and as one."""
    run = make_run(config, method, INIT, seeds(config)[0])
    encoded, probed = stages.evaluation_datasets(config), downstream_datasets(config)
    features = [stages.features_file(config, run, d) for d in encoded]
    results = [stages.probe_file(config, run, d) for d in probed]
    stores = [stages.data_dir(d) for d in encoded]
    common = ["--method", method, "--run", run.directory, "--encoder", stages.encoder_file(config, run)]
    features_keys = [key for d in encoded for key in stages.features_keys(config, d)]
    probe_keys = [key for d in probed for key in stages.probe_keys(config, d)]
    evaluation = _sliced(config, stages.evaluation_job_keys(config))
    features_command = [
        *("genssl", "features", "--config-json", _sliced(config, features_keys), *common),
        *("--downstream", *encoded, "--data", *stores, "--out", *features, "--threads", "1"),
    ]
    probe_command = [
        *("genssl", "probe", "--config-json", _sliced(config, probe_keys)),
        *("--features", *(stages.features_file(config, run, d) for d in probed), "--out", *results, "--threads", "1"),
    ]
    evaluate_command = [
        *("genssl", "evaluate", "--config-json", evaluation, *common, "--downstream", *encoded, "--data", *stores),
        *("--features", *features, "--probe", *probed, "--out", *results, "--threads", "1"),
    ]
    return {"features + probe": [features_command, probe_command], "evaluate": [evaluate_command]}


def _snakemake(workdir: Path, *args: str) -> float:
    """Seconds of one Snakemake invocation on ``workdir`` (its output shown when it fails)."""
    command = ["snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return time.perf_counter() - started


def _job_seconds(workdir: Path, rules: list[str], method: str, run: str) -> float:
    """The sum of the benchmark seconds of ``rules``' jobs of ``method``'s run directory ``run`` (one file per job
    per encoder, or per encoder and dataset)."""
    total = 0.0
    for rule in rules:
        for pattern in (f"*/{method}/{run}.tsv", f"*/{method}/{run}/*.tsv"):
            for tsv in (workdir / stages.BENCHMARKS / rule).glob(pattern):
                with open(tsv, newline="") as f:
                    total += sum(float(row["s"]) for row in csv.DictReader(f, delimiter="\t"))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "config" / "config.yaml"), help="the study")
    parser.add_argument("--method", default="simclr", help="the method whose initialisation is evaluated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", help="where to run (default: a temporary directory, removed afterwards)")
    args = parser.parse_args()
    config = load_config(args.config)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="genssl-evaluation-jobs-"))
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    shutil.copy(args.config, workdir / "config" / "config.yaml")
    run = make_run(config, args.method, INIT, seeds(config)[0])
    encoded, probed = stages.evaluation_datasets(config), downstream_datasets(config)
    targets = [stages.features_file(config, run, d) for d in encoded] + [
        stages.probe_file(config, run, d) for d in probed
    ]
    print(f"{args.method}/{run.directory}: features of {', '.join(encoded)}, probes of {', '.join(probed)}")
    _snakemake(workdir, *targets, "-c2")  # the stores, the encoder and a first evaluation

    commands = process_commands(config, args.method)
    per_dataset = ["--config", "features={one_job_per_encoder: false}"]
    layouts = {
        f"per dataset ({len(encoded) + len(probed)} jobs)": (per_dataset, ["extract_features", "linear_probe"]),
        "per encoder (1 job)": ([], ["evaluate_encoder"]),
    }
    walls: dict[str, list[float]] = {name: [] for name in [*commands, *layouts]}
    jobs: dict[str, list[float]] = {name: [] for name in layouts}
    environment = {**os.environ, **JOB_ENVIRONMENT}
    for _ in range(args.rounds):
        for name, lines in commands.items():
            started = time.perf_counter()
            for line in lines:
                subprocess.run(line, cwd=workdir, env=environment, check=True, capture_output=True)
            walls[name].append(time.perf_counter() - started)
        for name, (extra, rules) in layouts.items():
            # the targets first: the list options (--config, --forcerun) take every word after them
            walls[name].append(_snakemake(workdir, *targets, "-c1", *extra, "--forcerun", *rules))
            jobs[name].append(_job_seconds(workdir, rules, args.method, run.directory))

    print(f"median of {args.rounds} rounds, seconds")
    print(f"{'':34} {'wall':>7} {'jobs':>7}")
    for name, values in walls.items():
        kind = "snakemake" if name in layouts else "processes"
        job = f"{statistics.median(jobs[name]):7.1f}" if name in jobs else f"{'':>7}"
        print(f"{kind + ': ' + name:34} {statistics.median(values):7.1f} {job}")
    if args.workdir is None:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
