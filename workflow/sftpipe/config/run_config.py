"""RunConfig: a validated config with the derived values every stage needs (run dir, hashes, credentials)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftpipe.config.rules import CREDENTIAL_ENV
from sftpipe.paths import MODEL_ROOT


def stable_hash(obj: Any) -> str:
    """16 hex digits of sha256 over canonical JSON: equal settings, equal hash, on every machine."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunConfig:
    """A validated config with the derived values every stage needs."""

    data: dict[str, Any]
    root: Path

    @property
    def inp(self) -> dict[str, Any]:
        return self.data["runtime_info"]["input"]

    @property
    def variant(self) -> str:
        return self.data.get("variant") or ""

    @property
    def source(self) -> dict[str, Any]:
        return self.inp["source"]

    @property
    def conversion(self) -> dict[str, Any]:
        return self.inp["conversion"]

    @property
    def training(self) -> dict[str, Any]:
        return self.inp["training"]

    @property
    def infrastructure(self) -> dict[str, Any]:
        return self.inp["infrastructure"]

    @property
    def experiment(self) -> dict[str, Any]:
        return self.inp["experiment"]

    @property
    def data_name(self) -> str:
        return self.conversion["data_name"]

    @property
    def job_dir(self) -> str:
        return self.source["job_dir"] or self.data["meta_info"]["dependencies"]["trajectories_dir"]

    @property
    def run_dir(self) -> Path:
        """Contract: relative output_dir → artifacts/model/<basename>; absolute → as-is."""
        out = self.training.get("output_dir") or self.default_run_name()
        path = Path(out)
        return path if path.is_absolute() else MODEL_ROOT / path.name

    @property
    def run_name(self) -> str:
        return self.run_dir.name

    def default_run_name(self) -> str:
        base = self.data_name
        return f"{base}-{self.variant}" if self.variant else base

    @property
    def tracking_name(self) -> str:
        return self.experiment["run_name"] or self.run_name

    @property
    def model_path(self) -> str:
        return self.inp["model"]["model_name_or_path"]

    def credential(self, key: str) -> str:
        """From the credentials block, else the environment; never logged by callers."""
        return self.inp["credentials"].get(key) or os.environ.get(CREDENTIAL_ENV[key], "")

    def config_hash(self) -> str:
        """Everything that defines the run, without secrets and without the written-back output."""
        inp = {k: v for k, v in self.inp.items() if k != "credentials"}
        return stable_hash({"input": inp, "variant": self.variant})

    def training_hash(self) -> str:
        """What a checkpoint depends on: resuming across a change of these would mix two runs."""
        keys = ("model", "training", "dataset")
        subset = {k: self.inp.get(k) for k in keys}
        subset["data_name"] = self.data_name
        subset["world"] = [self.infrastructure["n_nodes"], self.infrastructure["n_gpus_per_node"]]
        subset["training"] = {
            k: v
            for k, v in subset["training"].items()
            if k not in ("save_steps", "logging_steps", "resume_from_checkpoint")
        }
        return stable_hash(subset)

    def registration_params(self) -> dict[str, Any]:
        """The inputs of `register`: a change here (and only here) re-registers."""
        return {
            "source": self.source,
            "data_name": self.data_name,
            "max_instances": self.conversion["max_instances"],
            "dataset": self.inp["dataset"],
        }
