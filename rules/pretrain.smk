rule pretrain:
    """Pretrain one method with one augmentation setting and seed (a replicate's directory is
    {augmentation}-seed{s}); resumes from the checkpoint in its output directory (so a job killed at its time
    limit continues where it stopped when it is retried). With resources gpu > 1 (the SLURM profile) it runs
    through torchrun, one process per GPU of the node."""
    input:
        data="results/data/{dataset}/manifest.json",
        variants=variant_store,
    output:
        encoder="results/pretrain/{dataset}/{method}/{augmentation}/encoder.safetensors",
        metrics="results/pretrain/{dataset}/{method}/{augmentation}/metrics.csv",
        run="results/pretrain/{dataset}/{method}/{augmentation}/run.json",
    params:
        config=pretrain_config_json,
        data=subpath(input.data, parent=True),
        out=subpath(output.encoder, parent=True),
        variants=lambda wildcards, input: f"--variants {subpath(input.variants, parent=True)}" if input.variants else "",
        augmentation=lambda wildcards: run_of(wildcards)[0],
        seed=lambda wildcards: run_of(wildcards)[1],
        launcher=lambda wildcards, resources: launcher(resources),
        threads=lambda wildcards, threads, resources: max(1, threads // max(1, int(resources.gpu))),
    log:
        "logs/pretrain/{dataset}/{method}/{augmentation}.log",
    benchmark:
        "benchmarks/pretrain/{dataset}/{method}/{augmentation}.tsv"
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        mem_mb=4000,
        gpu=0,
    shell:
        "{params.launcher} pretrain --method {wildcards.method} --augmentation {params.augmentation} --seed {params.seed}"
        " --config-json {params.config:q} --data {params.data} --out {params.out} {params.variants}"
        " --threads {params.threads} 2> {log}"
