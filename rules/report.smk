rule report:
    """The study's report: summary tables, tidy results, DVC metrics and figures (results/report/)."""
    input:
        unpack(report_inputs),
    output:
        summary=report("results/report/summary.md", caption="../report/summary.rst", category="Summary"),
        results="results/report/results.csv",
        metrics="results/report/metrics.json",
        **report_outputs(),
    params:
        config=lambda wildcards: to_json(config),
        out=subpath(output.summary, parent=True),
    log:
        "logs/report/report.log",
    benchmark:
        "benchmarks/report/report.tsv"
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        mem_mb=2000,
    shell:
        "genssl report --config-json {params.config:q} --results . --out {params.out} 2> {log}"
