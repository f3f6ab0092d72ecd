# Config validation, path helpers and input functions shared by all rules.
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))  # the sftpipe package, even if not installed

from sftpipe import config as sftconfig
from sftpipe.lf_config import render as render_lf_config

try:
    CFG = sftconfig.RunConfig(sftconfig.resolve(config, root=".", variant=config.get("variant")), Path("."))
except sftconfig.ConfigError as exc:
    raise WorkflowError(str(exc))

# One interpreter for every job: the locked training environment (meta_info.environment.sft_uv).
_ENV_PY = Path(CFG.data["meta_info"]["environment"]["sft_uv"]) / "bin" / "python"
SFT = f"{_ENV_PY if _ENV_PY.exists() else sys.executable} -m sftpipe.cli"
CONFIG_ARGS = f"--config {workflow.configfiles[0] if workflow.configfiles else 'config/config.yaml'}" + (
    f" --variant {CFG.variant}" if CFG.variant else ""
)

RUN = CFG.run_name
RUN_DIR = str(CFG.run_dir)
DATA_NAME = CFG.data_name
LF_DATA = str(sftconfig.LF_DATA_DIR)
DATASET_INFO = f"{LF_DATA}/dataset_info.json"
CONVERTED = f"{LF_DATA}/{DATA_NAME}.json"
REGISTERED = f"{LF_DATA}/.registered/{DATA_NAME}.json"
MANIFEST = f"{RUN_DIR}/train_manifest.json"
METRICS = f"{RUN_DIR}/metrics.json"
PLOT = f"{RUN_DIR}/training_loss.png"
WRITEBACK = f"{RUN_DIR}/writeback.json"
RECORD = f"{RUN_DIR}/record.json"
RULE_LOGS = "artifacts/logs/rules"


def json_param(obj):
    """Params are compared as text: canonical JSON makes a real change (and only that) rerun a rule."""
    return json.dumps(obj, sort_keys=True, default=str)


def registration_inputs(wildcards):
    """The file register points LLaMA-Factory at: converted (harbor_job) or the user's (local_lf)."""
    kind = CFG.source["type"]
    if kind == "harbor_job":
        return [CONVERTED]
    if kind == "local_lf":
        return [CFG.source["lf_path"]]
    return []


def model_inputs(wildcards):
    """A base model under artifacts/base_models/ is built locally (the embedded demo)."""
    if sftconfig.is_buildable_demo_model(CFG.model_path):
        return [f"{CFG.model_path}/config.json"]
    return []


def deepspeed_inputs(wildcards):
    ds = CFG.training.get("deepspeed")
    return [ds] if ds else []


def training_params():
    """Everything the trained weights depend on (not run ids or times: they would rerun every time)."""
    return json_param({"lf": render_lf_config(CFG), "world": CFG.infrastructure, "tracking": CFG.experiment})
