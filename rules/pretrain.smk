rule pretrain:
    """Pretrain one method with one augmentation setting and seed (a replicate's run directory is
    {augmentation}-seed{s}); resumes from the checkpoint in its output directory (so a job killed at its time
    limit continues where it stopped when it is retried). With resources gpu > 1 (the SLURM profile) it runs
    through torchrun, one process per GPU of the node."""
    input:
        data=f"{stages.DATA}/{stages.MANIFEST}",
        data_files=data_store_files,
        variants=variant_store,
    output:
        encoder=f"{stages.PRETRAIN}/{stages.ENCODER}",
        metrics=f"{stages.PRETRAIN}/{stages.METRICS}",
        run=f"{stages.PRETRAIN}/{stages.RUN_RECORD}",
    params:
        config=pretrain_config_json,
        data=subpath(input.data, parent=True),
        out=subpath(output.encoder, parent=True),
        variants=lambda wildcards, input: f"--variants {subpath(input.variants[0], parent=True)}" if input.variants else "",
        augmentation=lambda wildcards: run_of(wildcards).augmentation,
        seed=lambda wildcards: run_of(wildcards).seed,
        launcher=lambda wildcards, resources: launcher(resources),
        threads=lambda wildcards, threads, resources: max(1, threads // max(1, int(resources.gpu))),
    wildcard_constraints:
        run=PRETRAINED_RUN,
    log:
        f"{LOGS}/pretrain/{{dataset}}/{{method}}/{{run}}.log",
    benchmark:
        f"{BENCHMARKS}/pretrain/{{dataset}}/{{method}}/{{run}}.tsv"
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        attempt=attempt_of,
        mem_mb=4000,
        gpu=0,
    shell:
        "{params.launcher}"
        + RETRY_AWARE
        + " pretrain --method {wildcards.method} --augmentation {params.augmentation} --seed {params.seed}"
        " --config-json {params.config:q} --data {params.data} --out {params.out} {params.variants}"
        " --threads {params.threads} 2> {log}"


rule init_encoder:
    """A method's initialisation for one seed, untrained (run directory init[-seed{s}]): the backbone its runs with
    that seed start from, the random-init baseline that the probes compare every trained encoder with."""
    output:
        encoder=f"{stages.INIT_ENCODER}/{stages.ENCODER}",
        record=f"{stages.INIT_ENCODER}/{stages.INIT_RECORD}",
    wildcard_constraints:
        run=INIT_RUN,
    params:
        config=init_config_json,
        seed=lambda wildcards: run_of(wildcards).seed,
        out=subpath(output.encoder, parent=True),
    log:
        f"{LOGS}/init_encoder/{{dataset}}/{{method}}/{{run}}.log",
    benchmark:
        f"{BENCHMARKS}/init_encoder/{{dataset}}/{{method}}/{{run}}.tsv"
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        attempt=attempt_of,
        mem_mb=1000,
    shell:
        GENSSL
        + " init-encoder --method {wildcards.method} --seed {params.seed} --config-json {params.config:q}"
        " --out {params.out} 2> {log}"
