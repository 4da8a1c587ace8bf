rule report:
    """The study's report: summary tables, tidy results, DVC metrics and figures (results/report/)."""
    input:
        unpack(report_inputs),
    output:
        summary=report(f"{stages.REPORT}/summary.md", caption="../report/summary.rst", category="Summary"),
        results=f"{stages.REPORT}/results.csv",
        metrics=f"{stages.REPORT}/metrics.json",
        **report_outputs(),
    params:
        config=lambda wildcards: to_json(config),
        out=subpath(output.summary, parent=True),
    log:
        f"{LOGS}/report/report.log",
    benchmark:
        f"{BENCHMARKS}/report/report.tsv"
    conda:
        GENSSL_ENV
    threads: 1
    resources:
        attempt=attempt_of,
        mem_mb=2000,
    shell:
        GENSSL
        + " report --config-json {params.config:q} --results . --out {params.out} 2> {log}"
