checkpoint prepare_dataset:
    """Prepare a dataset into an image store with labels, splits and a manifest. A checkpoint: the jobs reading the
    store list its files as inputs, known once it is written (rules/common.smk, prepared_store_files)."""
    output:
        manifest=f"{stages.DATA}/{stages.MANIFEST}",
    params:
        config=dataset_config_json,
        out=subpath(output.manifest, parent=True),
    log:
        f"{LOGS}/prepare_dataset/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/prepare_dataset/{{dataset}}.tsv"
    conda:
        GENSSL_ENV
    threads: 2
    resources:
        attempt=attempt_of,
        mem_mb=2000,
    shell:
        GENSSL
        + " prepare --dataset {wildcards.dataset} --config-json {params.config:q}"
        " --out {params.out} --workers {threads} 2> {log}"
