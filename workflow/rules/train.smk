# Base model (demo only) and GPU training with LLaMA-Factory + DeepSpeed.


rule build_tiny_model:
    """The embedded demo's base model: random-init Qwen3 architecture, tokenizer trained locally."""
    output:
        "artifacts/base_models/{name}/config.json",
    log:
        f"{RULE_LOGS}/build_tiny_model_{{name}}.log",
    shell:
        "{SFT} build-tiny-model --out artifacts/base_models/{wildcards.name} > {log} 2>&1"


rule train:
    """Render the LLaMA-Factory config and train (or resume from the last complete checkpoint).

    The declared output is a small manifest, never the run directory: Snakemake deletes outputs
    before re-running a job, and checkpoints must survive an interruption.
    """
    output:
        manifest=MANIFEST,
    input:
        registered=REGISTERED,
        data=registration_inputs,
        model=model_inputs,
        deepspeed=deepspeed_inputs,
    params:
        training=training_params(),
    log:
        f"{RULE_LOGS}/train_{RUN}.log",
    threads: CFG.infrastructure["n_gpus_per_node"] if CFG.infrastructure["accelerator"] == "cpu" else 1
    shell:
        "{SFT} train {CONFIG_ARGS} --manifest {output.manifest} > {log} 2>&1"
