rule extract_features:
    """Features of every split of a downstream dataset from a pretrained encoder (frozen, deterministic
    resize + centre crop)."""
    input:
        encoder="results/pretrain/{dataset}/{method}/{augmentation}/encoder.safetensors",
        data="results/data/{downstream}/manifest.json",
    output:
        features="results/features/{dataset}/{method}/{augmentation}/{downstream}.npz",
    params:
        config=features_config_json,
        data=subpath(input.data, parent=True),
    log:
        "logs/extract_features/{dataset}/{method}/{augmentation}/{downstream}.log",
    benchmark:
        "benchmarks/extract_features/{dataset}/{method}/{augmentation}/{downstream}.tsv"
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "genssl features --method {wildcards.method} --augmentation {wildcards.augmentation}"
        " --downstream {wildcards.downstream} --config-json {params.config:q} --encoder {input.encoder}"
        " --data {params.data} --out {output.features} --threads {threads} 2> {log}"


rule extract_conditioning_features:
    """Features of a downstream dataset from a generator's conditioning encoder (what the generator is
    conditioned on), for the similarity analysis."""
    input:
        data="results/data/{downstream}/manifest.json",
        weights=generator_weights,
    output:
        features="results/features/{dataset}/conditioning/{generator}/{downstream}.npz",
    params:
        config=features_config_json,
        data=subpath(input.data, parent=True),
        weights=lambda wildcards, input: f"--weights {subpath(input.weights, parent=True)}" if input.weights else "",
    log:
        "logs/extract_conditioning_features/{dataset}/{generator}/{downstream}.log",
    benchmark:
        "benchmarks/extract_conditioning_features/{dataset}/{generator}/{downstream}.tsv"
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "genssl features --generator {wildcards.generator} --downstream {wildcards.downstream}"
        " --config-json {params.config:q} --data {params.data} {params.weights} --out {output.features}"
        " --threads {threads} 2> {log}"


rule linear_probe:
    """Linear probe (protocol `features` or `augmented`) and weighted kNN of one encoder on one downstream
    dataset."""
    input:
        unpack(augmented_probe_inputs),
        features="results/features/{dataset}/{method}/{augmentation}/{downstream}.npz",
    output:
        result="results/probe/{dataset}/{method}/{augmentation}/{downstream}.json",
    params:
        config=probe_config_json,
        images=lambda wildcards, input: (
            f"--encoder {input.encoder} --data {subpath(input.data, parent=True)}" if "encoder" in input.keys() else ""
        ),
    log:
        "logs/linear_probe/{dataset}/{method}/{augmentation}/{downstream}.log",
    benchmark:
        "benchmarks/linear_probe/{dataset}/{method}/{augmentation}/{downstream}.tsv"
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        mem_mb=4000,
    shell:
        "genssl probe --config-json {params.config:q} --features {input.features} {params.images}"
        " --out {output.result} --threads {threads} 2> {log}"


rule similarity:
    """CKA (biased, debiased) and orthogonal Procrustes distance with bootstrap intervals between every pair of
    encoders, the generators' conditioning encoders included."""
    input:
        unpack(similarity_features),
    output:
        cka="results/similarity/{dataset}/cka.csv",
        opd="results/similarity/{dataset}/opd.csv",
        matrices="results/similarity/{dataset}/matrices.json",
        cka_heatmap=report(
            "results/similarity/{dataset}/cka.png", caption="../report/similarity.rst", category="Similarity"
        ),
        cka_debiased_heatmap=report(
            "results/similarity/{dataset}/cka_debiased.png", caption="../report/similarity.rst", category="Similarity"
        ),
        opd_heatmap=report(
            "results/similarity/{dataset}/opd.png", caption="../report/similarity.rst", category="Similarity"
        ),
    params:
        config=similarity_config_json,
        features=lambda wildcards, input: " ".join(f"{name}={path}" for name, path in input.items()),
        out=subpath(output.cka, parent=True),
    log:
        "logs/similarity/{dataset}.log",
    benchmark:
        "benchmarks/similarity/{dataset}.tsv"
    conda:
        GENSSL_ENV
    threads: 2
    resources:
        mem_mb=4000,
    shell:
        "genssl similarity --config-json {params.config:q} --features {params.features} --out {params.out}"
        " --threads {threads} 2> {log}"
