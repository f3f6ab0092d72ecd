# Metrics, loss plot, config write-back and run history: cheap, local, regenerable on their own.


rule metrics:
    """metrics.json (summary + series) and metrics.jsonl from trainer_state.json and trainer_log.jsonl."""
    input:
        str(sftpaths.run_file("{run}", sftpaths.MANIFEST)),
    output:
        summary=report(
            str(sftpaths.run_file("{run}", sftpaths.METRICS_JSON)),
            caption="../report/metrics.rst",
            category="Training",
            subcategory="{run}",
        ),
        series=str(sftpaths.run_file("{run}", sftpaths.METRICS_JSONL)),
    log:
        str(sftpaths.rule_log("metrics", "{run}")),
    localrule: True
    params:
        run_dir=run_dir_of,
    shell:
        "sft metrics {params.run_dir} --write --out-json {output.summary}"
        " --out-jsonl {output.series} > {log} 2>&1"


rule plot:
    """training_loss.png: raw and smoothed loss, eval loss, learning rate."""
    input:
        str(sftpaths.run_file("{run}", sftpaths.METRICS_JSON)),
    output:
        report(
            str(sftpaths.run_file("{run}", sftpaths.LOSS_PLOT)),
            caption="../report/training_loss.rst",
            category="Training",
            subcategory="{run}",
        ),
    log:
        str(sftpaths.rule_log("plot", "{run}")),
    localrule: True
    params:
        run_dir=run_dir_of,
    shell:
        "sft plot {params.run_dir} --metrics {input} --out {output} > {log} 2>&1"


rule writeback:
    """Rewrite only runtime_info.output of config.yaml (a variant's goes to its own output file)."""
    input:
        manifest=str(sftpaths.run_file("{run}", sftpaths.MANIFEST)),
        metrics=str(sftpaths.run_file("{run}", sftpaths.METRICS_JSON)),
        plot=str(sftpaths.run_file("{run}", sftpaths.LOSS_PLOT)),
    output:
        str(sftpaths.run_file("{run}", sftpaths.WRITEBACK_MARKER)),
    log:
        str(sftpaths.rule_log("writeback", "{run}")),
    localrule: True
    params:
        config_args=run_config_args,
    shell:
        "sft writeback {params.config_args} --manifest {input.manifest} --metrics {input.metrics}"
        " --plot {input.plot} --marker {output} > {log} 2>&1"


rule record:
    """Complete the run's artifacts/index.yaml entry with its results and record paths."""
    input:
        manifest=str(sftpaths.run_file("{run}", sftpaths.MANIFEST)),
        writeback=str(sftpaths.run_file("{run}", sftpaths.WRITEBACK_MARKER)),
    output:
        str(sftpaths.run_file("{run}", sftpaths.RECORD_MARKER)),
    log:
        str(sftpaths.rule_log("record", "{run}")),
    localrule: True
    params:
        config_args=run_config_args,
    shell:
        "sft record {params.config_args} --manifest {input.manifest} --writeback {input.writeback}"
        " --marker {output} > {log} 2>&1"
