# Trajectory conversion, dataset registration and CPU pre-tokenization.


rule convert:
    """Harbor job -> IM + LLaMA-Factory sharegpt rows, with stats and a report accounting for every trial."""
    input:
        job=harbor_job_dir,
        tokenizer=tokenizer_inputs_for_data,
    output:
        lf=f"{LF_DATA}/{{data}}.json",
        im="artifacts/data/{data}.im.jsonl",
        stats=report(
            "artifacts/data/{data}.stats.json",
            caption="../report/conversion_stats.rst",
            category="Data",
            subcategory="{data}",
        ),
        report=report(
            "artifacts/data/{data}.report.json",
            caption="../report/conversion_report.rst",
            category="Data",
            subcategory="{data}",
        ),
        report_txt="artifacts/data/{data}.report.txt",
    log:
        f"{RULE_LOGS}/convert_{{data}}.log",
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
        f"{LF_DATA}/.registered/{{data}}.json",
    log:
        f"{RULE_LOGS}/register_{{data}}.log",
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
        registered=f"{LF_DATA}/.registered/{{data}}.json",
        data=registration_inputs,
        tokenizer=tokenizer_inputs_for_data,
    output:
        directory("artifacts/data/tokenized/{data}/{key}"),
    log:
        f"{RULE_LOGS}/tokenize_{{data}}_{{key}}.log",
    threads: 2
    resources:
        cpus_per_task=2,
        mem_mb=16000,
    params:
        tokenization=tokenize_params,
        config_args=tokenize_config_args,
    shell:
        "sft tokenize {params.config_args} --out {output} > {log} 2>&1"
