rule extract_features:
    """Features of every split of a downstream dataset (with features.one_job_per_encoder: of every evaluation
    dataset, the downstream ones and the similarity analysis', in one process) from one encoder, a pretrained run's
    or a method's initialisation (frozen, deterministic resize + centre crop)."""
    input:
        encoder=run_encoder,
        data=lambda wildcards: manifests_of(job_datasets(wildcards, EVALUATION_DATASETS)),
        data_files=lambda wildcards: store_files_of(job_datasets(wildcards, EVALUATION_DATASETS)),
    output:
        features=per_job(stages.FEATURES, EVALUATION_DATASETS),
    params:
        config=features_config_json,
        downstream=lambda wildcards: " ".join(job_datasets(wildcards, EVALUATION_DATASETS)),
        data=lambda wildcards: stores_of(job_datasets(wildcards, EVALUATION_DATASETS)),
    log:
        job_file(f"{LOGS}/extract_features/{{dataset}}/{{method}}/{{run}}", ".log"),
    benchmark:
        job_file(f"{BENCHMARKS}/extract_features/{{dataset}}/{{method}}/{{run}}", ".tsv")
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        attempt=attempt_of,
        mem_mb=4000,
    shell:
        GENSSL
        + " features --method {wildcards.method} --run {wildcards.run}"
        " --downstream {params.downstream} --config-json {params.config:q} --encoder {input.encoder}"
        " --data {params.data} --out {output.features} --threads {threads} 2> {log}"


rule extract_conditioning_features:
    """Features of a downstream dataset from a generator's conditioning encoder (what the generator is
    conditioned on), for the similarity analysis."""
    input:
        data=DOWNSTREAM_MANIFEST,
        data_files=downstream_store_files,
        weights=generator_weights,
    output:
        features=stages.CONDITIONING_FEATURES,
    params:
        config=conditioning_features_config_json,
        data=subpath(input.data, parent=True),
        weights=lambda wildcards, input: f"--weights {subpath(input.weights, parent=True)}" if input.weights else "",
    log:
        f"{LOGS}/extract_conditioning_features/{{dataset}}/{{generator}}/{{downstream}}.log",
    benchmark:
        f"{BENCHMARKS}/extract_conditioning_features/{{dataset}}/{{generator}}/{{downstream}}.tsv"
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        attempt=attempt_of,
        mem_mb=4000,
    shell:
        GENSSL
        + " features --generator {wildcards.generator} --downstream {wildcards.downstream}"
        " --config-json {params.config:q} --data {params.data} {params.weights} --out {output.features}"
        " --threads {threads} 2> {log}"


rule linear_probe:
    """Linear probe (protocol `features` or `augmented`) and weighted kNN of one encoder on a downstream dataset (with
    features.one_job_per_encoder: on every downstream dataset, in one process)."""
    input:
        unpack(augmented_probe_inputs),
        features=per_job(stages.FEATURES, DOWNSTREAM_DATASETS),
    output:
        result=per_job(stages.PROBE, DOWNSTREAM_DATASETS),
    params:
        config=probe_config_json,
        images=lambda wildcards, input: (
            f"--encoder {input.encoder} --data {stores_of(job_datasets(wildcards, DOWNSTREAM_DATASETS))}"
            if "encoder" in input.keys()
            else ""
        ),
    log:
        job_file(f"{LOGS}/linear_probe/{{dataset}}/{{method}}/{{run}}", ".log"),
    benchmark:
        job_file(f"{BENCHMARKS}/linear_probe/{{dataset}}/{{method}}/{{run}}", ".tsv")
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        attempt=attempt_of,
        mem_mb=4000,
    shell:
        GENSSL
        + " probe --config-json {params.config:q} --features {input.features} {params.images}"
        " --out {output.result} --threads {threads} 2> {log}"


rule similarity:
    """CKA (biased, debiased) and orthogonal Procrustes distance with bootstrap intervals between every pair of
    encoders, the generators' conditioning encoders included."""
    input:
        unpack(similarity_features),
    output:
        cka=f"{stages.SIMILARITY}/cka.csv",
        opd=f"{stages.SIMILARITY}/opd.csv",
        matrices=f"{stages.SIMILARITY}/matrices.json",
        cka_heatmap=report(
            f"{stages.SIMILARITY}/cka.png", caption="../report/similarity.rst", category="Similarity"
        ),
        cka_debiased_heatmap=report(
            f"{stages.SIMILARITY}/cka_debiased.png", caption="../report/similarity.rst", category="Similarity"
        ),
        opd_heatmap=report(
            f"{stages.SIMILARITY}/opd.png", caption="../report/similarity.rst", category="Similarity"
        ),
    params:
        config=similarity_config_json,
        features=lambda wildcards, input: " ".join(f"{name}={path}" for name, path in input.items()),
        out=subpath(output.cka, parent=True),
    log:
        f"{LOGS}/similarity/{{dataset}}.log",
    benchmark:
        f"{BENCHMARKS}/similarity/{{dataset}}.tsv"
    conda:
        GENSSL_ENV
    threads: 2
    resources:
        attempt=attempt_of,
        mem_mb=4000,
    shell:
        GENSSL
        + " similarity --config-json {params.config:q} --features {params.features} --out {params.out}"
        " --threads {threads} 2> {log}"
