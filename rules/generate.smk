rule train_generator:
    """Train an instance-conditioned generator of the workflow (icdiffusion, icgan) on the pretraining dataset,
    conditioned on the frozen features of the conditioning encoder."""
    input:
        data=f"{stages.DATA}/{stages.MANIFEST}",
        data_files=data_store_files,
        encoder=conditioning_encoder,
    output:
        weights=f"{stages.GENERATOR}/{stages.GENERATOR_RECORD}",
    params:
        config=generator_config_json,
        data=subpath(input.data, parent=True),
        out=subpath(output.weights, parent=True),
    log:
        f"{LOGS}/train_generator/{{dataset}}/{{generator}}.log",
    benchmark:
        f"{BENCHMARKS}/train_generator/{{dataset}}/{{generator}}.tsv"
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        attempt=attempt_of,
        mem_mb=4000,
    shell:
        GENSSL
        + " train-generator --generator {wildcards.generator} --config-json {params.config:q}"
        " --data {params.data} --encoder {input.encoder} --out {params.out} --threads {threads} 2> {log}"


rule generate_shard:
    """Generate the variants of one shard of the training images (shards run as parallel jobs; a finished
    shard is never redone)."""
    input:
        data=f"{stages.DATA}/{stages.MANIFEST}",
        data_files=data_store_files,
        weights=generator_weights,
    output:
        shard=temp(directory(stages.SHARD)),
    params:
        config=generator_config_json,
        data=subpath(input.data, parent=True),
        out=stages.AUGMENT,
        weights=lambda wildcards, input: f"--weights {subpath(input.weights, parent=True)}" if input.weights else "",
        shard=lambda wildcards: int(wildcards.shard),
    log:
        f"{LOGS}/generate_shard/{{dataset}}/{{generator}}/{{shard}}.log",
    benchmark:
        f"{BENCHMARKS}/generate_shard/{{dataset}}/{{generator}}/{{shard}}.tsv"
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        attempt=attempt_of,
        mem_mb=4000,
    shell:
        GENSSL
        + " generate --generator {wildcards.generator} --config-json {params.config:q} --data {params.data}"
        " {params.weights} --out {params.out} --shard {params.shard} --threads {threads} 2> {log}"


checkpoint gather_augmentations:
    """Gather the shards into one variant store with its manifest and a preview grid of sources and variants. A
    checkpoint, as prepare_dataset: the runs reading the store list its files as inputs."""
    input:
        data=f"{stages.DATA}/{stages.MANIFEST}",
        data_files=data_store_files,
        weights=generator_weights,
        shards=generation_shards,
    output:
        manifest=f"{stages.AUGMENT}/{stages.MANIFEST}",
        preview=report(
            f"{stages.AUGMENT}/{stages.PREVIEW}",
            caption="../report/augmentation_preview.rst",
            category="Generative augmentation",
        ),
    params:
        config=generator_config_json,
        data=subpath(input.data, parent=True),
        out=subpath(output.manifest, parent=True),
        weights=lambda wildcards, input: f"--weights {subpath(input.weights, parent=True)}" if input.weights else "",
    log:
        f"{LOGS}/gather_augmentations/{{dataset}}/{{generator}}.log",
    benchmark:
        f"{BENCHMARKS}/gather_augmentations/{{dataset}}/{{generator}}.tsv"
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        attempt=attempt_of,
        mem_mb=2000,
    shell:
        GENSSL
        + " generate --generator {wildcards.generator} --config-json {params.config:q} --data {params.data}"
        " {params.weights} --out {params.out} --gather 2> {log}"
