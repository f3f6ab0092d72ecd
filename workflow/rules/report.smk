# Metrics, loss plot, config write-back and run history: cheap, local, regenerable on their own.


rule metrics:
    """metrics.json (summary + series) and metrics.jsonl from trainer_state.json and trainer_log.jsonl."""
    output:
        summary=METRICS,
        series=f"{RUN_DIR}/metrics.jsonl",
    input:
        MANIFEST,
    log:
        f"{RULE_LOGS}/metrics_{RUN}.log",
    shell:
        "{SFT} metrics {RUN_DIR} --write --out-json {output.summary} --out-jsonl {output.series} > {log} 2>&1"


rule plot:
    """training_loss.png: raw and smoothed loss, eval loss, learning rate."""
    output:
        report(PLOT, caption="../report/training_loss.rst", category="Training"),
    input:
        METRICS,
    log:
        f"{RULE_LOGS}/plot_{RUN}.log",
    shell:
        "{SFT} plot {RUN_DIR} --metrics {input} --out {output} > {log} 2>&1"


rule writeback:
    """Rewrite only runtime_info.output of config.yaml (or the variant's output file)."""
    output:
        WRITEBACK,
    input:
        manifest=MANIFEST,
        metrics=METRICS,
        plot=PLOT,
    log:
        f"{RULE_LOGS}/writeback_{RUN}.log",
    shell:
        "{SFT} writeback {CONFIG_ARGS} --manifest {input.manifest} --metrics {input.metrics}"
        " --plot {input.plot} --marker {output} > {log} 2>&1"


rule record:
    """Complete the run's artifacts/index.yaml entry with its results and record paths."""
    output:
        RECORD,
    input:
        manifest=MANIFEST,
        writeback=WRITEBACK,
    log:
        f"{RULE_LOGS}/record_{RUN}.log",
    shell:
        "{SFT} record {CONFIG_ARGS} --manifest {input.manifest} --writeback {input.writeback}"
        " --marker {output} > {log} 2>&1"
