"""Run management on a REAL run: the tiny model trained by `llamafactory-cli train` on CPU.

The module fixture prepares a run the way the launcher does (registered data, rendered LF YAML,
redacted run_config.yaml, start records, a `running` index entry, run.json with the training pid,
a heartbeat), trains 6 steps (checkpoint and eval every 2), then records the end. Credentials are
set to a unique secret in config.yaml and the environment throughout. A second training is
SIGKILLed to check that it shows as crashed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sftpipe import config as sc
from sftpipe import paths
from sftpipe.cli import main
from sftpipe.config import rotation_guard
from sftpipe.data.registration import register
from sftpipe.lf import render as lf_config
from sftpipe.report import compare, publish
from sftpipe.runs import best as best_checkpoint
from sftpipe.runs import index as run_index
from sftpipe.runs import provenance as records
from sftpipe.runs import status as run_status
from sftpipe.runs.store import RunStore, heartbeat
from sftpipe.util.timefmt import utc_now

from tests.project import edit_config, make_project

pytestmark = pytest.mark.slow

LF_CLI = Path(sys.executable).with_name("llamafactory-cli")
SECRET = "sk-RUNMGMT-UNIQUE-9d3a7c51e0"


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HOME=str(tmp / "hf"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        CUDA_VISIBLE_DEVICES="",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        WANDB_API_KEY=SECRET,
        HF_TOKEN=SECRET + "-hf",
        WANDB_MODE="disabled",
    )
    return env


@pytest.fixture(scope="module")
def model_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:  # the session-wide tiny model of tests/conftest.py, when it is there
        return Path(request.getfixturevalue("tiny_model_dir"))
    except pytest.FixtureLookupError:
        from sftpipe.data.tiny_model import build_tiny_model

        return build_tiny_model(tmp_path_factory.mktemp("tiny_model") / "tiny")


def _project(tmp: Path, model_dir: Path, output_dir: str, max_steps: int) -> sc.RunConfig:
    root = tmp / "proj"
    if not root.exists():
        make_project(root)

    def edit(data):
        inp = data["runtime_info"]["input"]
        inp["source"].update(type="local_lf", lf_path="config/demo/lf_demo.json")
        inp["conversion"]["data_name"] = "demo_sft"
        inp["model"]["model_name_or_path"] = str(model_dir)
        inp["credentials"]["wandb_api_key"] = SECRET
        inp["credentials"]["hf_token"] = SECRET + "-hf"
        tr = inp["training"]
        tr.update(
            deepspeed="",
            output_dir=output_dir,
            max_steps=max_steps,
            save_steps=2,
            eval_steps=2,
            val_size=0.2,
            cutoff_len=256,
            gradient_accumulation_steps=1,
        )
        inp["infrastructure"]["n_gpus_per_node"] = 1

    edit_config(root / "config/config.yaml", edit)
    return sc.load(root=root)


def _start(cfg: sc.RunConfig, tmp: Path) -> tuple[subprocess.Popen, str, Path]:
    """What launch.train does before torchrun, then `llamafactory-cli train` (single CPU process)."""
    root, run_dir = cfg.root, cfg.root / cfg.run_dir
    register(cfg, root / paths.LF_DATA_DIR / "dataset_info.json", root / "artifacts/data/registered.json")
    run_dir.mkdir(parents=True, exist_ok=True)
    lf_yaml = run_dir / "llamafactory_config.yaml"
    lf = lf_config.render(cfg)
    lf.pop("ddp_backend", None)  # one process without torchrun: no process group to configure
    lf_config.dump(lf, lf_yaml)
    lf_config.dump(sc.redacted(cfg.data), run_dir / "run_config.yaml")
    records.write_start_records(cfg, RunStore(run_dir))
    rid = run_index.append_entry(
        root / paths.INDEX_PATH,
        {
            "status": "running",
            "run_dir": str(cfg.run_dir),
            "started_at": utc_now(),
            "config_hash": cfg.config_hash(),
            "data_name": cfg.data_name,
        },
    )
    with open(tmp / f"{cfg.run_name}.log", "w") as console:  # the child keeps its own copy of the fd
        proc = subprocess.Popen(
            [str(LF_CLI), "train", str(lf_yaml)],
            cwd=root,
            env=_env(tmp),
            stdout=console,
            stderr=subprocess.STDOUT,
        )
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "run_id": rid,
                "run_name": cfg.run_name,
                "training_hash": cfg.training_hash(),
                "config_hash": cfg.config_hash(),
                "started_at": utc_now(),
                "pid": proc.pid,
                "host": socket.gethostname(),
            }
        )
    )
    return proc, rid, run_dir


@pytest.fixture(scope="module")
def real_run(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("runmgmt")
    cfg = _project(tmp, model_dir, "real-run", max_steps=6)
    proc, rid, run_dir = _start(cfg, tmp)
    mid = None
    with heartbeat(RunStore(run_dir), interval_s=1, run_id=rid):
        deadline = time.monotonic() + 600
        while proc.poll() is None:
            assert time.monotonic() < deadline, "training did not finish in 600 s"
            if mid is None:
                prog = run_status.progress(run_dir)
                if prog["step"] and 1 <= prog["step"] < 6:  # a snapshot while it trains
                    mid = run_status.run_report(run_status.resolve_run(cfg.root, rid))
            time.sleep(0.2)
    assert proc.returncode == 0, (tmp / "real-run.log").read_text()[-3000:]
    results = json.loads((run_dir / "train_results.json").read_text())
    run_index.update_entry(
        cfg.root / paths.INDEX_PATH, rid, status="completed", exit_code=0, final_loss=results["train_loss"]
    )
    records.write_checkpoint_index(RunStore(run_dir))
    RunStore(run_dir).log_event("INFO", "run ended", status="completed")
    return {"root": cfg.root, "rid": rid, "run_dir": run_dir, "mid": mid, "cfg": cfg, "tmp": tmp}


def test_live_status_while_training(real_run):
    mid = real_run["mid"]
    assert mid is not None, "no snapshot taken between steps 1 and 5"
    assert mid["status"] == "running" and "alive" in mid["reason"]
    p = mid["progress"]
    assert 1 <= p["step"] < 6 and p["total_steps"] == 6 and p["loss"] is not None and p["eta"] is not None


def test_final_status_progress_and_history(real_run, capsys):
    root, rid, run_dir = real_run["root"], real_run["rid"], real_run["run_dir"]
    rep = run_status.run_report(run_status.resolve_run(root, rid))
    p = rep["progress"]
    assert rep["status"] == "completed" and (p["step"], p["total_steps"], p["percentage"]) == (6, 6, 100.0)
    state = json.loads((run_dir / "trainer_state.json").read_text())
    evals = {h["step"]: h["eval_loss"] for h in state["log_history"] if "eval_loss" in h}
    assert p["eval_loss"] == pytest.approx(evals[6]) and p["eval_step"] == 6
    assert p["tokens_per_second"] > 0 and p["total_tokens"] == state["num_input_tokens_seen"]
    assert p["latest_checkpoint"].endswith("checkpoint-6")
    hb = json.loads((run_dir / paths.HEARTBEAT).read_text())
    assert hb["alive"] is False and hb["beats"] >= 2
    assert main(["runs", "--root", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "completed"


def test_checkpoints_of_the_real_run(real_run):
    run_dir = real_run["run_dir"]
    state = json.loads((run_dir / "trainer_state.json").read_text())
    losses = {h["step"]: h["loss"] for h in state["log_history"] if "loss" in h}
    evals = {h["step"]: h["eval_loss"] for h in state["log_history"] if "eval_loss" in h}
    result = best_checkpoint.best_checkpoint(run_dir)
    rows = result["checkpoints"]
    assert [(r["step"], r["complete"]) for r in rows] == [(2, True), (4, True), (6, True)]
    for r in rows:
        assert r["loss"] == pytest.approx(losses[r["step"]]) and r["eval_loss"] == pytest.approx(
            evals[r["step"]]
        )
    best_step = min((2, 4, 6), key=lambda s: (evals[s], -s))
    assert result["metric"] == "eval_loss" and result["best"]["step"] == best_step
    assert result["latest"]["step"] == 6
    index = [json.loads(line) for line in (run_dir / paths.CHECKPOINT_INDEX).read_text().splitlines()]
    assert [(c["step"], c["complete"], c["eval_loss"]) for c in index] == [
        (r["step"], r["complete"], r["eval_loss"]) for r in rows
    ]


def test_publish_loads_with_transformers_and_verifies(real_run, capsys):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, rid, run_dir = real_run["root"], real_run["rid"], real_run["run_dir"]
    assert (
        main(
            [
                "publish",
                rid,
                "--root",
                str(root),
                "--name",
                "tiny-sft",
                "--version",
                "1.0.0",
                "--checkpoint",
                "latest",
            ]
        )
        == 0
    )
    out = root / "artifacts/published/tiny-sft/1.0.0"
    assert "published tiny-sft 1.0.0" in capsys.readouterr().out
    manifest = yaml.safe_load((out / "model.yaml").read_text())
    assert manifest["source"]["step"] == 6 and manifest["source"]["run_id"] == rid
    assert manifest["base_model"] == str(real_run["cfg"].model_path)
    ds = manifest["datasets"][0]
    assert ds["data_name"] == "demo_sft" and ds["sha256"] == records.sha256_file(
        root / "config/demo/lf_demo.json"
    )
    assert manifest["training_config"]["config_hash"] == real_run["cfg"].config_hash()
    assert manifest["metrics"]["eval_loss"] is not None and manifest["weights"]["method"] == "copied"
    assert {f["path"] for f in manifest["files"]} >= {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    }

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    trained = load_file(str(run_dir / "checkpoint-6" / "model.safetensors"))
    for name, tensor in model.state_dict().items():
        if name in trained:
            assert torch.equal(tensor, trained[name]), name
    text = tok.apply_chat_template(
        [{"role": "user", "content": "fix the bug"}], tokenize=False, add_generation_prompt=True
    )
    ids = tok(text, return_tensors="pt", return_token_type_ids=False)
    gen = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert gen.shape[1] == ids["input_ids"].shape[1] + 3 or tok.eos_token_id in gen[0].tolist()

    assert main(["publish", "--verify", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    with open(out / "tokenizer_config.json", "a") as fh:
        fh.write(" ")
    (out / "extra.txt").write_text("x")
    problems = publish.verify(out)
    assert any(p.startswith("tokenizer_config.json: size") for p in problems)
    assert "extra.txt: present but not listed in model.yaml" in problems
    assert main(["publish", "--verify", str(out)]) == 1
    with pytest.raises(publish.PublishError, match="immutable"):
        publish.publish(root, rid, "tiny-sft", "1.0.0")
    with pytest.raises(publish.PublishError, match="no checkpoint-5"):
        publish.publish(root, rid, "tiny-sft", "1.0.1", checkpoint="5")
    best = publish.publish(root, rid, "tiny-sft", "1.1.0", checkpoint="best")
    assert publish.verify(best) == []


def test_compare_real_run_with_a_variant_copy(real_run, capsys):
    root, rid, run_dir = real_run["root"], real_run["rid"], real_run["run_dir"]
    other = run_dir.with_name("real-run-lr")
    other.mkdir()
    shutil.copy2(run_dir / "trainer_log.jsonl", other)
    cfg = yaml.safe_load((run_dir / "run_config.yaml").read_text())
    cfg["runtime_info"]["input"]["training"]["learning_rate"] = 5e-3
    (other / "run_config.yaml").write_text(yaml.safe_dump(cfg))
    png = real_run["tmp"] / "compare.png"
    assert main(["compare", rid, str(other), "--root", str(root), "--out", str(png)]) == 0
    text = capsys.readouterr().out
    assert "runtime_info.input.training.learning_rate" in text and SECRET not in text
    assert png.stat().st_size > 10_000
    result = compare.compare(root, [rid, str(other)])
    assert list(result["config_differences"]) == ["runtime_info.input.training.learning_rate"]


def test_no_credential_in_any_file(real_run):
    root = real_run["root"]
    assert SECRET in (root / "config/config.yaml").read_text()  # the secret really was configured
    leaks = [
        str(p)
        for p in (root / "artifacts").rglob("*")
        if p.is_file() and not p.is_symlink() and SECRET.encode() in p.read_bytes()
    ]
    assert leaks == []


def test_sigkilled_run_shows_crashed(model_dir, real_run, capsys):
    cfg = _project(real_run["tmp"], model_dir, "killed-run", max_steps=50)
    proc, rid, _ = _start(cfg, real_run["tmp"])
    root = cfg.root
    time.sleep(3)
    assert proc.poll() is None
    assert run_status.derive_status(run_status.resolve_run(root, rid)).status == "running"
    proc.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not run_status.pid_alive(proc.pid) is False:  # SIGKILL delivered: a zombie until reaped
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert run_status.derive_status(run_status.resolve_run(root, rid)).status == "crashed"
    proc.wait(30)
    assert main(["status", rid, "--root", str(root), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["status"] == "crashed" and rep["recorded_status"] == "running"
    assert (
        run_index.find_entry(root / paths.INDEX_PATH, rid)["status"] == "running"
    )  # derivation never writes
    assert main(["status", rid, "--root", str(root), "--reconcile"]) == 0
    assert f"reconciled {rid}: running -> crashed" in capsys.readouterr().out
    assert run_index.find_entry(root / paths.INDEX_PATH, rid)["status"] == "crashed"


def test_rotation_guard_keeps_the_best_checkpoint(model_dir, tmp_path):
    """save_total_limit 1 with the guard's metric_for_best_model: HF keeps the best, not just the newest."""
    lf = {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "full",
        "dataset": "lf_demo",
        "dataset_dir": str(Path(__file__).resolve().parents[2] / "config/demo"),
        "template": "qwen3_nothink",
        "cutoff_len": 128,
        "output_dir": str(tmp_path / "rot"),
        "per_device_train_batch_size": 1,
        "learning_rate": 0.05,
        "max_steps": 5,
        "lr_scheduler_type": "cosine",
        "warmup_ratio": 0.1,
        "logging_steps": 1,
        "save_steps": 1,
        "save_total_limit": 1,
        "val_size": 0.1,
        "eval_strategy": "steps",
        "eval_steps": 1,
        "per_device_eval_batch_size": 1,
        "report_to": "none",
        "preprocessing_num_workers": 1,
    }
    guarded, problems = rotation_guard(lf)
    assert problems == [] and guarded["metric_for_best_model"] == "eval_loss"
    (tmp_path / "rot.yaml").write_text(yaml.safe_dump(guarded))
    result = subprocess.run(
        [str(LF_CLI), "train", str(tmp_path / "rot.yaml")],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    state = json.loads((tmp_path / "rot/trainer_state.json").read_text())
    evals = {h["step"]: h["eval_loss"] for h in state["log_history"] if "eval_loss" in h}
    best_step = min(evals, key=evals.get)
    assert best_step != 5, f"eval losses {evals}: the best is the last step, the test shows nothing"
    kept = best_checkpoint.best_checkpoint(tmp_path / "rot")
    assert [r["step"] for r in kept["checkpoints"]] == [best_step]  # rotation deleted every other one
    assert kept["best"]["step"] == best_step


def test_publish_consolidates_a_zero3_checkpoint(model_dir, tmp_path):
    """ZeRO-3 on 2 CPU ranks with stage3_gather_16bit_weights_on_model_save off: the checkpoint holds only
    shards; publish consolidates them (tied embeddings included) into a model transformers loads."""
    import torch
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import AutoModelForCausalLM, AutoTokenizer

    repo = Path(__file__).resolve().parents[2]
    ds = json.loads((repo / "artifacts/training_config/deepspeed/ds_z3_config.json").read_text())
    ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = False
    (tmp_path / "ds.json").write_text(json.dumps(ds))
    run_dir = tmp_path / "z3"
    lf = {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "full",
        "dataset": "lf_demo",
        "dataset_dir": str(repo / "config/demo"),
        "template": "qwen3_nothink",
        "cutoff_len": 128,
        "output_dir": str(run_dir),
        "per_device_train_batch_size": 1,
        "max_steps": 2,
        "learning_rate": 1.0e-3,
        "logging_steps": 1,
        "save_steps": 2,
        "report_to": "none",
        "deepspeed": str(tmp_path / "ds.json"),
        "ddp_backend": "gloo",
        "preprocessing_num_workers": 1,
    }
    (tmp_path / "z3.yaml").write_text(yaml.safe_dump(lf))
    env = _env(tmp_path) | {
        "FORCE_TORCHRUN": "1",
        "NPROC_PER_NODE": "2",
        "DS_ACCELERATOR": "cpu",
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }  # torchrun
    result = subprocess.run(
        [str(LF_CLI), "train", str(tmp_path / "z3.yaml")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    ckpt = run_dir / "checkpoint-2"
    assert not list(ckpt.glob("model*.safetensors")) and (ckpt / "latest").is_file()  # shards only

    rows = best_checkpoint.checkpoint_table(run_dir)
    assert [(r["step"], r["complete"]) for r in rows] == [(2, True)]
    out = publish.publish(
        tmp_path, str(run_dir), "tiny-z3", "0.1.0", checkpoint="latest", out_dir=tmp_path / "pub"
    )
    manifest = yaml.safe_load((out / "model.yaml").read_text())
    assert manifest["weights"]["method"] == "zero_to_fp32" and manifest["weights"]["files"] == [
        "model.safetensors"
    ]
    assert publish.verify(out) == []
    model = AutoModelForCausalLM.from_pretrained(out)
    AutoTokenizer.from_pretrained(out)
    reference = get_fp32_state_dict_from_zero_checkpoint(str(ckpt))
    loaded = model.state_dict()
    assert set(reference) == set(loaded)
    for name, tensor in reference.items():
        assert torch.equal(loaded[name].float(), tensor.float()), name


def test_sft_stop_ends_a_real_launcher_run_as_stopped(model_dir, tmp_path, capsys):
    """`sft train` (launcher + torchrun + lf_entry, one CPU rank) stopped by `sft stop --wait`."""
    root = make_project(tmp_path / "proj")
    shutil.copytree(model_dir, root / "artifacts/base_models/tiny-qwen3")

    def edit(data):
        inp = data["runtime_info"]["input"]
        inp["source"].update(type="local_lf", lf_path="config/demo/lf_demo.json")
        inp["conversion"]["data_name"] = "demo_sft"
        inp["model"]["model_name_or_path"] = "artifacts/base_models/tiny-qwen3"
        inp["training"].update(
            deepspeed="",
            max_steps=2000,
            save_steps=1000,
            eval_steps=1000,
            cutoff_len=128,
            gradient_accumulation_steps=1,
        )
        inp["infrastructure"]["n_gpus_per_node"] = 1

    edit_config(root / "config/config.yaml", edit)
    assert (
        main(
            [
                "register",
                "--root",
                str(root),
                "--config",
                str(root / "config/config.yaml"),
                "--dataset-info",
                str(root / paths.LF_DATA_DIR / "dataset_info.json"),
                "--marker",
                str(root / "artifacts/data/reg.json"),
            ]
        )
        == 0
    )
    env = _env(tmp_path) | {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    with open(tmp_path / "train.out", "w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("sft")), "train", "--manifest", "artifacts/train.json"],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (tmp_path / "train.out").read_text()[-3000:]
            assert time.monotonic() < deadline, "no step logged in 300 s"
            if (root / paths.INDEX_PATH).is_file():
                rep = run_status.run_report(run_status.resolve_run(root, None))
                if rep["progress"]["step"]:
                    break
            time.sleep(0.5)
        assert rep["status"] == "running" and rep["progress"]["total_steps"] == 2000
        capsys.readouterr()
        assert main(["stop", rep["run_id"], "--root", str(root), "--wait", "--timeout", "300", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["final_status"] == "stopped"
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    entry = run_index.find_entry(root / paths.INDEX_PATH, rep["run_id"])
    result = best_checkpoint.best_checkpoint(root / entry["run_dir"])
    assert entry["status"] == "stopped" and result["latest"] is not None
    assert entry["checkpoint_path"] == f"{entry['run_dir']}/checkpoint-{result['latest']['step']}"
    assert not (root / entry["run_dir"] / ".sft_stop.json").exists()  # honoured and removed
