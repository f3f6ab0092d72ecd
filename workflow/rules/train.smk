# Base model (demo only) and GPU training with LLaMA-Factory + DeepSpeed.


rule build_tiny_model:
    """The embedded demo's base model: random-init Qwen3 architecture, tokenizer trained locally."""
    output:
        str(sftpaths.BASE_MODELS_DIR / "{name}" / "config.json"),
    log:
        str(sftpaths.rule_log("build_tiny_model", "{name}")),
    localrule: True
    shell:
        "sft build-tiny-model --out $(dirname {output}) > {log} 2>&1"


rule train:
    """Render the LLaMA-Factory config and train (or resume from the last complete checkpoint).

    The declared output is a small manifest, never the run directory: Snakemake deletes outputs
    before re-running a job, and checkpoints must survive an interruption.
    """
    input:
        registered=run_registration,
        data=run_data_file,
        model=run_model,
        deepspeed=run_deepspeed,
        tokenized=run_tokenized,
    output:
        manifest=str(sftpaths.run_file("{run}", sftpaths.MANIFEST)),
    log:
        str(sftpaths.rule_log("train", "{run}")),
    threads: train_resources("threads")
    resources:
        nodes=train_resources("nodes"),
        gres=train_resources("gres"),
        tasks_per_gpu=train_resources("tasks_per_gpu"),
        tasks=train_resources("tasks"),
        cpus_per_task=train_resources("cpus_per_task"),
        mem_mb=train_resources("mem_mb"),
        runtime=train_resources("runtime"),
    params:
        training=training_params,
        config_args=run_config_args,
    shell:
        "sft train {params.config_args} --tokenized '{input.tokenized}' --manifest {output.manifest}"
        " > {log} 2>&1"
