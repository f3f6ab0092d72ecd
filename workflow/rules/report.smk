# Metrics, loss plot, config write-back and run history: cheap, local, regenerable on their own.


rule metrics:
    """metrics.json (summary + series) and metrics.jsonl from trainer_state.json and trainer_log.jsonl."""
    output:
        summary=report(
            f"{MODEL_ROOT}/{{run}}/metrics.json",
            caption="../report/metrics.rst",
            category="Training",
            subcategory="{run}",
        ),
        series=f"{MODEL_ROOT}/{{run}}/metrics.jsonl",
    input:
        f"{MODEL_ROOT}/{{run}}/train_manifest.json",
    log:
        f"{RULE_LOGS}/metrics_{{run}}.log",
    localrule: True
    shell:
        "{SFT} metrics {MODEL_ROOT}/{wildcards.run} --write --out-json {output.summary}"
        " --out-jsonl {output.series} > {log} 2>&1"


rule plot:
    """training_loss.png: raw and smoothed loss, eval loss, learning rate."""
    output:
        report(
            f"{MODEL_ROOT}/{{run}}/training_loss.png",
            caption="../report/training_loss.rst",
            category="Training",
            subcategory="{run}",
        ),
    input:
        f"{MODEL_ROOT}/{{run}}/metrics.json",
    log:
        f"{RULE_LOGS}/plot_{{run}}.log",
    localrule: True
    shell:
        "{SFT} plot {MODEL_ROOT}/{wildcards.run} --metrics {input} --out {output} > {log} 2>&1"


rule writeback:
    """Rewrite only runtime_info.output of config.yaml (a variant's goes to its own output file)."""
    output:
        f"{MODEL_ROOT}/{{run}}/writeback.json",
    input:
        manifest=f"{MODEL_ROOT}/{{run}}/train_manifest.json",
        metrics=f"{MODEL_ROOT}/{{run}}/metrics.json",
        plot=f"{MODEL_ROOT}/{{run}}/training_loss.png",
    params:
        config_args=run_config_args,
    log:
        f"{RULE_LOGS}/writeback_{{run}}.log",
    localrule: True
    shell:
        "{SFT} writeback {params.config_args} --manifest {input.manifest} --metrics {input.metrics}"
        " --plot {input.plot} --marker {output} > {log} 2>&1"


rule record:
    """Complete the run's artifacts/index.yaml entry with its results and record paths."""
    output:
        f"{MODEL_ROOT}/{{run}}/record.json",
    input:
        manifest=f"{MODEL_ROOT}/{{run}}/train_manifest.json",
        writeback=f"{MODEL_ROOT}/{{run}}/writeback.json",
    params:
        config_args=run_config_args,
    log:
        f"{RULE_LOGS}/record_{{run}}.log",
    localrule: True
    shell:
        "{SFT} record {params.config_args} --manifest {input.manifest} --writeback {input.writeback}"
        " --marker {output} > {log} 2>&1"
