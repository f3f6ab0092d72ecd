# Metrics, loss plot, config write-back and run history: cheap, local, regenerable on their own.


rule metrics:
    """metrics.json (summary + series) and metrics.jsonl from trainer_state.json and trainer_log.jsonl."""
    input:
        f"{MODEL_ROOT}/{{run}}/train_manifest.json",
    output:
        summary=report(
            f"{MODEL_ROOT}/{{run}}/metrics.json",
            caption="../report/metrics.rst",
            category="Training",
            subcategory="{run}",
        ),
        series=f"{MODEL_ROOT}/{{run}}/metrics.jsonl",
    log:
        f"{RULE_LOGS}/metrics_{{run}}.log",
    localrule: True
    params:
        run_dir=run_dir_of,
    shell:
        "sft metrics {params.run_dir} --write --out-json {output.summary}"
        " --out-jsonl {output.series} > {log} 2>&1"


rule plot:
    """training_loss.png: raw and smoothed loss, eval loss, learning rate."""
    input:
        f"{MODEL_ROOT}/{{run}}/metrics.json",
    output:
        report(
            f"{MODEL_ROOT}/{{run}}/training_loss.png",
            caption="../report/training_loss.rst",
            category="Training",
            subcategory="{run}",
        ),
    log:
        f"{RULE_LOGS}/plot_{{run}}.log",
    localrule: True
    params:
        run_dir=run_dir_of,
    shell:
        "sft plot {params.run_dir} --metrics {input} --out {output} > {log} 2>&1"


rule writeback:
    """Rewrite only runtime_info.output of config.yaml (a variant's goes to its own output file)."""
    input:
        manifest=f"{MODEL_ROOT}/{{run}}/train_manifest.json",
        metrics=f"{MODEL_ROOT}/{{run}}/metrics.json",
        plot=f"{MODEL_ROOT}/{{run}}/training_loss.png",
    output:
        f"{MODEL_ROOT}/{{run}}/writeback.json",
    log:
        f"{RULE_LOGS}/writeback_{{run}}.log",
    localrule: True
    params:
        config_args=run_config_args,
    shell:
        "sft writeback {params.config_args} --manifest {input.manifest} --metrics {input.metrics}"
        " --plot {input.plot} --marker {output} > {log} 2>&1"


rule record:
    """Complete the run's artifacts/index.yaml entry with its results and record paths."""
    input:
        manifest=f"{MODEL_ROOT}/{{run}}/train_manifest.json",
        writeback=f"{MODEL_ROOT}/{{run}}/writeback.json",
    output:
        f"{MODEL_ROOT}/{{run}}/record.json",
    log:
        f"{RULE_LOGS}/record_{{run}}.log",
    localrule: True
    params:
        config_args=run_config_args,
    shell:
        "sft record {params.config_args} --manifest {input.manifest} --writeback {input.writeback}"
        " --marker {output} > {log} 2>&1"
