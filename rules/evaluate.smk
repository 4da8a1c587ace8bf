# An encoder's features and probes: with features.one_job_per_encoder one job per encoder (evaluate_encoder), else
# one features job and one probe job per encoder and dataset (extract_features, linear_probe), as a cluster wants.
if PER_ENCODER:

    rule evaluate_encoder:
        """An encoder's features of every evaluation dataset (the downstream ones and the similarity analysis'), then
        its linear probe (protocol `features` or `augmented`) and weighted kNN on every downstream dataset, in one
        process: what extract_features and linear_probe make, one job per encoder."""
        input:
            encoder=run_encoder,
            data=manifests_of(EVALUATION_DATASETS),
            data_files=lambda wildcards: store_files_of(EVALUATION_DATASETS),
        output:
            features=expand(stages.FEATURES, downstream=EVALUATION_DATASETS, allow_missing=True),
            result=expand(stages.PROBE, downstream=DOWNSTREAM_DATASETS, allow_missing=True),
        params:
            config=evaluation_config_json,
            downstream=" ".join(EVALUATION_DATASETS),
            data=stores_of(EVALUATION_DATASETS),
            probe=" ".join(DOWNSTREAM_DATASETS),
        log:
            f"{LOGS}/evaluate_encoder/{{dataset}}/{{method}}/{{run}}.log",
        benchmark:
            f"{BENCHMARKS}/evaluate_encoder/{{dataset}}/{{method}}/{{run}}.tsv"
        conda:
            GENSSL_ENV
        threads: 1
        resources:
            attempt=attempt_of,
            mem_mb=4000,
        shell:
            GENSSL
            + " evaluate --method {wildcards.method} --run {wildcards.run} --config-json {params.config:q}"
            " --encoder {input.encoder} --downstream {params.downstream} --data {params.data}"
            " --features {output.features} --probe {params.probe} --out {output.result} --threads {threads} 2> {log}"

else:

    rule extract_features:
        """Features of every split of a downstream dataset from one encoder, a pretrained run's or a method's
        initialisation (frozen, deterministic resize + centre crop)."""
        input:
            encoder=run_encoder,
            data=DOWNSTREAM_MANIFEST,
            data_files=downstream_store_files,
        output:
            features=stages.FEATURES,
        params:
            config=features_config_json,
            data=subpath(input.data, parent=True),
        log:
            f"{LOGS}/extract_features/{{dataset}}/{{method}}/{{run}}/{{downstream}}.log",
        benchmark:
            f"{BENCHMARKS}/extract_features/{{dataset}}/{{method}}/{{run}}/{{downstream}}.tsv"
        conda:
            GENSSL_ENV
        threads: 1
        resources:
            attempt=attempt_of,
            mem_mb=4000,
        shell:
            GENSSL
            + " features --method {wildcards.method} --run {wildcards.run} --downstream {wildcards.downstream}"
            " --config-json {params.config:q} --encoder {input.encoder} --data {params.data} --out {output.features}"
            " --threads {threads} 2> {log}"

    rule linear_probe:
        """Linear probe (protocol `features` or `augmented`) and weighted kNN of one encoder on a downstream dataset."""
        input:
            unpack(augmented_probe_inputs),
            features=stages.FEATURES,
        output:
            result=stages.PROBE,
        params:
            config=probe_config_json,
            images=lambda wildcards, input: (
                f"--encoder {input.encoder} --data {stages.data_dir(wildcards.downstream)}"
                if "encoder" in input.keys()
                else ""
            ),
        log:
            f"{LOGS}/linear_probe/{{dataset}}/{{method}}/{{run}}/{{downstream}}.log",
        benchmark:
            f"{BENCHMARKS}/linear_probe/{{dataset}}/{{method}}/{{run}}/{{downstream}}.tsv"
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
