# Config validation, the runs and datasets of this invocation, path helpers and input functions.
import json
import re
import sys
from pathlib import Path

sys.path.insert(
    0, str(Path(workflow.basedir) / "workflow")
)  # the sftpipe package, even if not installed

from sftpipe import config as sftconfig
from sftpipe import paths as sftpaths
from sftpipe import plan as sftplan

try:
    PLAN = sftplan.build(config, root=Path("."))
except sftconfig.ConfigError as exc:
    raise WorkflowError(str(exc))

RUNS = (
    PLAN.runs
)  # run name -> RunConfig (the active profile and/or the requested variants)
DATASETS = PLAN.datasets  # data_name -> RunConfig that defines it


envvars:
    "PATH",


# Every job runs `sft` from the locked training environment (meta_info.environment.sft_uv), or from
# the environment running Snakemake when that one is not built. Each job's shell puts it first on PATH
# (SLURM jobs too); the workflow's own process and PATH are left alone: loading it has no side effects.
_ENV_BIN = Path(PLAN.env_dir) / "bin"
_SFT_BIN = (
    _ENV_BIN if (_ENV_BIN / "sft").exists() else Path(sys.executable).parent
).resolve()
shell.prefix(f'set -euo pipefail; export PATH="{_SFT_BIN}:$PATH"; ')
CONFIG_FILE = workflow.configfiles[0] if workflow.configfiles else "config/config.yaml"

DATASET_INFO = str(sftpaths.DATASET_INFO)


wildcard_constraints:
    run="|".join(map(re.escape, RUNS)),
    data="|".join(map(re.escape, DATASETS)),


def json_param(obj):
    """Params are compared as text: canonical JSON makes a real change (and only that) rerun a rule."""
    return json.dumps(obj, sort_keys=True, default=str)


def run_dir_of(wildcards):
    return str(sftpaths.run_dir(wildcards.run))


def run_cfg(wildcards):
    return RUNS[wildcards.run]


def data_cfg(wildcards):
    return DATASETS[wildcards.data]


def run_config_args(wildcards):
    """`--config … [--variant …]` for the CLI: stable text, so it never triggers a rerun."""
    return sftplan.cli_config_args(CONFIG_FILE, RUNS[wildcards.run])


def data_config_args(wildcards):
    return sftplan.cli_config_args(CONFIG_FILE, DATASETS[wildcards.data])


# ---- data side -------------------------------------------------------------------------------
def harbor_job_dir(wildcards):
    return data_cfg(wildcards).job_dir


def conversion_params(wildcards):
    return json_param(sftplan.conversion_inputs(data_cfg(wildcards)))


def registration_inputs(wildcards):
    """The file register points LLaMA-Factory at: converted (harbor_job) or the user's (local_lf)."""
    return sftplan.registered_file(data_cfg(wildcards))


def registration_params(wildcards):
    return json_param(data_cfg(wildcards).registration_params())


def tokenizer_inputs_for_data(wildcards):
    """Token lengths need the tokenizer: the demo model is built first when it is the one configured."""
    return sftplan.model_marker(data_cfg(wildcards))


# ---- training side ---------------------------------------------------------------------------
def run_registration(wildcards):
    return str(sftpaths.registered_marker(run_cfg(wildcards).data_name))


def run_data_file(wildcards):
    return sftplan.registered_file(run_cfg(wildcards))


def run_model(wildcards):
    return sftplan.model_marker(run_cfg(wildcards))


def run_deepspeed(wildcards):
    ds = run_cfg(wildcards).training.get("deepspeed")
    return [ds] if ds else []


def run_tokenized(wildcards):
    return sftplan.tokenized_dirs(run_cfg(wildcards))


def tokenize_params(wildcards):
    return json_param(
        sftplan.tokenize_inputs(PLAN.tokenized[(wildcards.data, wildcards.key)])
    )


def tokenize_config_args(wildcards):
    return sftplan.cli_config_args(
        CONFIG_FILE, PLAN.tokenized[(wildcards.data, wildcards.key)]
    )


def training_params(wildcards):
    """Everything the trained weights depend on (never run ids or times: they would rerun every time)."""
    return json_param(sftplan.training_inputs(run_cfg(wildcards)))


# ---- resources: declared here, overridable from a profile with set-resources ---------------------
def train_resources(name):
    def resource(wildcards, attempt=1):
        return sftplan.train_resources(run_cfg(wildcards))[name]

    return resource
