# Trajectory conversion, dataset registration and CPU pre-tokenization.


rule convert:
    """Harbor job -> IM + LLaMA-Factory sharegpt rows, with stats and a report accounting for every trial."""
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
    input:
        job=harbor_job_dir,
        tokenizer=tokenizer_inputs_for_data,
    params:
        conversion=conversion_params,
        config_args=data_config_args,
    log:
        f"{RULE_LOGS}/convert_{{data}}.log",
    threads: workflow.cores
    shell:
        "{SFT} convert-config {params.config_args} --out-dir artifacts/data > {log} 2>&1"


rule register:
    """Write/merge the data_name entry of dataset_info.json (other datasets are preserved)."""
    output:
        f"{LF_DATA}/.registered/{{data}}.json",
    input:
        registration_inputs,
    params:
        registration=registration_params,
        config_args=data_config_args,
    log:
        f"{RULE_LOGS}/register_{{data}}.log",
    localrule: True
    shell:
        "{SFT} register {params.config_args} --dataset-info {DATASET_INFO} --marker {output} > {log} 2>&1"


rule tokenize:
    """LLaMA-Factory's own data pipeline on CPU (tokenizer + template, no weights) into a tokenized_path cache.

    The directory name is a hash of every setting that changes tokens; data and tokenizer are inputs.
    """
    output:
        directory("artifacts/data/tokenized/{data}/{key}"),
    input:
        registered=f"{LF_DATA}/.registered/{{data}}.json",
        data=registration_inputs,
        tokenizer=tokenizer_inputs_for_data,
    params:
        tokenization=tokenize_params,
        config_args=tokenize_config_args,
    log:
        f"{RULE_LOGS}/tokenize_{{data}}_{{key}}.log",
    threads: 2
    resources:
        cpus_per_task=2,
        mem_mb=16000,
    shell:
        "{SFT} tokenize {params.config_args} --out {output} > {log} 2>&1"
