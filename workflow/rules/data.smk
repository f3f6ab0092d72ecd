# Trajectory conversion, dataset registration and CPU pre-tokenization.


rule convert:
    """Harbor job -> IM + LLaMA-Factory sharegpt rows, with stats and a report accounting for every trial."""
    input:
        job=harbor_job_dir,
        tokenizer=tokenizer_inputs_for_data,
    output:
        lf=str(sftpaths.lf_data_file("{data}")),
        im=str(sftpaths.im_file("{data}")),
        stats=report(
            str(sftpaths.stats_file("{data}")),
            caption="../report/conversion_stats.rst",
            category="Data",
            subcategory="{data}",
        ),
        report=report(
            str(sftpaths.report_file("{data}")),
            caption="../report/conversion_report.rst",
            category="Data",
            subcategory="{data}",
        ),
        report_txt=str(sftpaths.report_text_file("{data}")),
    log:
        str(sftpaths.rule_log("convert", "{data}")),
    threads: workflow.cores
    params:
        conversion=conversion_params,
        config_args=data_config_args,
    shell:
        "sft convert-config {params.config_args} --lf {output.lf} --im {output.im} --stats {output.stats}"
        " --report {output.report} --report-txt {output.report_txt} > {log} 2>&1"


rule register:
    """Write/merge the data_name entry of dataset_info.json (other datasets are preserved)."""
    input:
        registration_inputs,
    output:
        str(sftpaths.registered_marker("{data}")),
    log:
        str(sftpaths.rule_log("register", "{data}")),
    localrule: True
    params:
        registration=registration_params,
        config_args=data_config_args,
        dataset_info=DATASET_INFO,
    shell:
        "sft register {params.config_args} --dataset-info {params.dataset_info} --marker {output} > {log} 2>&1"


rule tokenize:
    """LLaMA-Factory's own data pipeline on CPU (tokenizer + template, no weights) into a tokenized_path cache.

    The directory name is a hash of every setting that changes tokens; data and tokenizer are inputs.
    """
    input:
        registered=str(sftpaths.registered_marker("{data}")),
        data=registration_inputs,
        tokenizer=tokenizer_inputs_for_data,
    output:
        directory(str(sftpaths.tokenized_dir("{data}", "{key}"))),
    log:
        str(sftpaths.rule_log("tokenize", "{data}", "{key}")),
    threads: 2
    resources:
        cpus_per_task=2,
        mem_mb=16000,
    params:
        tokenization=tokenize_params,
        config_args=tokenize_config_args,
    shell:
        "sft tokenize {params.config_args} --out {output} > {log} 2>&1"
