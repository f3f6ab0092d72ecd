# Trajectory conversion and dataset registration.


rule convert:
    """Harbor job -> IM + LLaMA-Factory sharegpt rows, with stats and a report accounting for every trial."""
    output:
        lf=CONVERTED,
        im=f"artifacts/data/{DATA_NAME}.im.jsonl",
        stats=f"artifacts/data/{DATA_NAME}.stats.json",
        report=f"artifacts/data/{DATA_NAME}.report.json",
    input:
        job=CFG.job_dir or [],
        model=model_inputs,
    params:
        conversion=json_param(CFG.conversion),
        source=json_param(CFG.source),
        tokenization=json_param({k: CFG.training[k] for k in ("template", "cutoff_len")}),
    log:
        f"{RULE_LOGS}/convert_{DATA_NAME}.log",
    threads: workflow.cores
    shell:
        "{SFT} convert-config {CONFIG_ARGS} --out-dir artifacts/data > {log} 2>&1"


rule register:
    """Write/merge the data_name entry of dataset_info.json (other datasets are preserved)."""
    output:
        REGISTERED,
    input:
        registration_inputs,
    params:
        registration=json_param(CFG.registration_params()),
    log:
        f"{RULE_LOGS}/register_{DATA_NAME}.log",
    shell:
        "{SFT} register {CONFIG_ARGS} --dataset-info {DATASET_INFO} --marker {output} > {log} 2>&1"
