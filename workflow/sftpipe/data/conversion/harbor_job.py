"""Discover the trials of a Harbor job directory and decide which ones to convert.

(Long module: discovery, exclusion and per-instance selection are one policy, read together.)

A trial dir is a direct child of the job dir holding `config.json`; its `result.json` is written
last (and a retried trial is deleted and re-run under the same name), so a trial without it is
`incomplete`, even when the job-level result.json lists a reward for it (the report names that
source). An unreadable config.json or result.json makes the trial `damaged`. Every child entry of the job dir
that is a directory ends up as exactly one `TrialRecord`: either selectable or carrying a
`skip_reason` (nothing is dropped silently). Plain files at the job level (config.json,
result.json, job.log, lock.json, ...) are not trials and are ignored.

Rewards: the job's `result.json` (`stats.evals[*].reward_stats.reward`, string keys) is the
primary source once the job has finished; the trial's own `result.json`
(`verifier_result.rewards`), then `verifier/reward.txt` / `verifier/reward.json`, are the fallback,
and the only source while the job is still running (its job-level stats are partial then).

Selection semantics (documented policy):
* ``resolved``: reward >= 1.0; ``unresolved``: a reward below 1.0; ``all``: any trial with a reward.
  A trial without any reward is skipped (``no_reward``, or ``exception`` when it also recorded one).
* ``exception_policy`` applies to trials with ``exception_info`` AND a reward:
  ``keep_if_rewarded`` (default: the verifier still scored the final repository state, and the
  original converter, which read only the job-level reward stats, kept them) or ``drop``.
* The conversion order is deterministic: sha256(instance id), then trial name. Hashing spreads the
  order across repositories (a plain sort would favour owners early in the alphabet) while staying
  reproducible. ``max_instances`` keeps the first N *instances* in that order that yield at least
  one row, with every selected trial of those instances (several solutions of one task are
  distinct samples) unless ``max_trials_per_instance`` caps them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Selection = Literal["resolved", "unresolved", "all"]
ExceptionPolicy = Literal["keep_if_rewarded", "drop"]

# Harbor agent names -> this pipeline's scaffold keys.
AGENT_TO_SCAFFOLD = {
    "claude-code": "claude-code",
    "opencode": "open-code",
    "open-code": "open-code",
    "openhands-sdk": "openhands-sdk",
    "terminus-2": "terminus2",
    "terminus2": "terminus2",
}
SCAFFOLDS = ("claude-code", "open-code", "openhands-sdk", "terminus2")

_INSTANCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
_SWE_ID_RE = re.compile(
    r"^(?P<owner>[A-Za-z0-9][A-Za-z0-9._\-]*?)__(?P<repo>[A-Za-z0-9._\-]+?)-(?P<num>\d+)(?:__.+)?$"
)
_MAX_JSON_BYTES = 64 * 1024 * 1024  # a config/result file larger than this is not a Harbor file


@dataclass
class TrialRecord:
    """What the job dir says about one trial, before its trajectory is read."""

    trial_name: str
    trial_dir: Path
    instance_id: str | None = None
    repo: str | None = None  # "owner/repo" for SWE-style ids
    agent_name: str | None = None
    scaffold: str | None = None
    model_name: str | None = None
    reward: float | None = None
    reward_source: str = "none"  # job_result | trial_result | reward_txt | reward_json | none
    exception_type: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # becomes IM _instance_metadata
    skip_reason: str | None = None
    skip_detail: str = ""
    damage: list[str] = field(default_factory=list)  # damage codes when skip_reason is "damaged"

    @property
    def order_key(self) -> tuple[str, str]:
        digest = hashlib.sha256((self.instance_id or "").encode("utf-8")).hexdigest()
        return (digest, self.trial_name)


@dataclass
class JobRewards:
    """Job-level view of result.json: rewards/exceptions by trial name, and whether it finished."""

    rewards: dict[str, float] = field(default_factory=dict)
    exceptions: dict[str, str] = field(default_factory=dict)
    finished: bool = False
    problem: str = ""  # why the job result could not be used ("" when fine or absent)


def repo_of_instance(instance_id: str) -> str | None:
    """`owner__repo-123[__suffix]` -> `owner/repo`; None for ids of another shape."""
    m = _SWE_ID_RE.match(instance_id)
    return f"{m.group('owner')}/{m.group('repo')}" if m else None


def load_excluded_repos(path: str | os.PathLike[str] | None) -> set[str]:
    """Lower-cased `owner/repo` entries; `#` starts a comment; "" or None disables exclusion."""
    if not path:
        return set()
    repos: set[str] = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            repos.add(entry.lower())
    return repos


def _read_json_object(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(object, "") or (None, reason); never raises."""
    try:
        if path.stat().st_size > _MAX_JSON_BYTES:
            return None, "too_large"
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not_utf8"
    except (json.JSONDecodeError, RecursionError) as exc:
        return None, f"invalid_json: {exc}"
    if not isinstance(data, dict):
        return None, f"not_an_object: {type(data).__name__}"
    return data, ""


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, str):
        try:
            return _as_float(float(value.strip()))
        except ValueError:
            return None
    return None


def _pick_reward(rewards: Any) -> float | None:
    """A rewards dict -> the `reward` entry, or the only entry; anything else -> None."""
    if not isinstance(rewards, dict) or not rewards:
        return None
    if "reward" in rewards:
        return _as_float(rewards["reward"])
    if len(rewards) == 1:
        return _as_float(next(iter(rewards.values())))
    return None


def read_job_rewards(job_dir: Path) -> JobRewards:
    """Rewards and exceptions by trial name from the job's result.json; `problem` says why
    they could not be used (empty when the file is simply missing)."""
    out = JobRewards()
    data, problem = _read_json_object(job_dir / "result.json")
    if data is None:
        out.problem = "" if problem == "missing" else f"job result.json {problem}"
        return out
    out.finished = bool(data.get("finished_at"))
    stats = data.get("stats")
    evals = stats.get("evals") if isinstance(stats, dict) else None
    if not isinstance(evals, dict):
        if out.finished:
            out.problem = "job result.json has no stats.evals"
        return out
    for ev in evals.values():
        if not isinstance(ev, dict):
            continue
        reward_stats = ev.get("reward_stats")
        by_value = reward_stats.get("reward") if isinstance(reward_stats, dict) else None
        if isinstance(by_value, dict):
            for key, names in by_value.items():
                value = _as_float(key)
                if value is None or not isinstance(names, list):
                    continue
                for name in names:
                    if isinstance(name, str):
                        out.rewards[name] = value
        exc_stats = ev.get("exception_stats")
        if isinstance(exc_stats, dict):
            for exc_type, names in exc_stats.items():
                if isinstance(names, list):
                    for name in names:
                        if isinstance(name, str):
                            out.exceptions[name] = str(exc_type)
    # A job result without finished_at but with evals is still being rewritten: treat as running.
    if "finished_at" not in data and out.rewards:
        out.finished = True  # old Harbor versions omit the field once done; evals are then final
    return out


def _instance_id_from(trial_dir: Path, config: dict[str, Any], result: dict[str, Any] | None) -> str | None:
    task = config.get("task")
    path = task.get("path") if isinstance(task, dict) else None
    if isinstance(path, str) and path.strip():
        # Resolve lexically: relative task paths are relative to the trial dir; only the name matters.
        name = os.path.basename(os.path.normpath(os.path.join(str(trial_dir), path.strip())))
        if name:
            return name
    if result is not None:
        task_name = result.get("task_name")
        if isinstance(task_name, str) and task_name.strip():
            return task_name.strip()
    return None


def _agent_name_from(config: dict[str, Any], result: dict[str, Any] | None) -> str | None:
    agent = config.get("agent")
    name = agent.get("name") if isinstance(agent, dict) else None
    if not isinstance(name, str) and result is not None:
        info = result.get("agent_info")
        name = info.get("name") if isinstance(info, dict) else None
    return name if isinstance(name, str) and name else None


def _model_name_from(config: dict[str, Any], result: dict[str, Any] | None) -> str | None:
    agent = config.get("agent")
    name = agent.get("model_name") if isinstance(agent, dict) else None
    if not isinstance(name, str) and result is not None:
        info = result.get("agent_info")
        model = info.get("model_info") if isinstance(info, dict) else None
        name = model.get("name") if isinstance(model, dict) else None
    return name if isinstance(name, str) and name else None


def _trial_reward(trial_dir: Path, result: dict[str, Any]) -> tuple[float | None, str]:
    verifier = result.get("verifier_result")
    if isinstance(verifier, dict):
        value = _pick_reward(verifier.get("rewards"))
        if value is not None:
            return value, "trial_result"
    try:
        text = (trial_dir / "verifier" / "reward.txt").read_text(encoding="utf-8").strip()
        value = _as_float(text)
        if value is not None:
            return value, "reward_txt"
    except (OSError, UnicodeDecodeError):
        pass
    data, _ = _read_json_object(trial_dir / "verifier" / "reward.json")
    if data is not None:
        value = _pick_reward(data)
        if value is not None:
            return value, "reward_json"
    return None, "none"


def _instance_metadata(config: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Small, JSON-safe facts about the instance and the run, kept in the IM record."""
    meta: dict[str, Any] = {}
    task = config.get("task")
    if isinstance(task, dict):
        for key in ("path", "source", "git_url", "git_commit_id"):
            if isinstance(task.get(key), str):
                meta[f"task_{key}"] = task[key]
    for key in ("task_name", "source", "started_at", "finished_at"):
        if isinstance(result.get(key), str):
            meta[key] = result[key]
    info = result.get("agent_info")
    if isinstance(info, dict) and isinstance(info.get("version"), str):
        meta["agent_version"] = info["version"]
    agent_result = result.get("agent_result")
    if isinstance(agent_result, dict):
        for key in ("n_input_tokens", "n_cache_tokens", "n_output_tokens", "cost_usd"):
            if isinstance(agent_result.get(key), (int, float)) and not isinstance(
                agent_result.get(key), bool
            ):
                meta[key] = agent_result[key]
    return meta


def _valid_name(name: str) -> str:
    """'' when fine, else why the entry name cannot be a trial name."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.listdir surrogate-escapes undecodable bytes
        return "name is not valid UTF-8"
    if "\\" in name or "/" in name or name in (".", ".."):
        return "name contains a path separator"
    if any(ord(c) < 32 for c in name):
        return "name contains control characters"
    return ""


def inspect_trial(
    job_dir: Path, name: str, job: JobRewards, scaffold: str, excluded_repos: set[str]
) -> TrialRecord:
    """Everything the job dir says about one child entry; never raises."""
    trial_dir = job_dir / name
    rec = TrialRecord(trial_name=name, trial_dir=trial_dir)

    def skip(reason: str, detail: str = "") -> TrialRecord:
        rec.skip_reason, rec.skip_detail = reason, detail
        return rec

    problem = _valid_name(name)
    if problem:
        # Show undecodable bytes as \xNN so the name survives JSON/UTF-8 output.
        rec.trial_name = os.fsencode(name).decode("utf-8", "backslashreplace")
        return skip("invalid_name", problem)
    try:
        if trial_dir.is_symlink():
            resolved = trial_dir.resolve(strict=True)
            if not resolved.is_dir():
                return skip("not_a_directory", "symlink to a non-directory")
    except RuntimeError:
        return skip("symlink_loop", "symlink loop")
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            return skip("symlink_loop", "symlink loop")
        return skip("broken_symlink", str(exc.strerror or exc))

    config, problem = _read_json_object(trial_dir / "config.json")
    if config is None:
        if problem == "missing":
            return skip("missing_config", "no config.json: not a Harbor trial")
        rec.damage = ["invalid_config"]
        return skip("damaged", f"invalid_config at config.json: {problem}")
    result, problem = _read_json_object(trial_dir / "result.json")
    if result is None:
        if problem != "missing":
            rec.damage = ["invalid_result"]
            return skip("damaged", f"invalid_result at result.json: {problem}")
        # Harbor writes result.json last and deletes a retried trial to re-run it under the same name,
        # so a trial without it is incomplete or being re-run, whatever the job-level stats claim.
        detail = "no result.json (trial running, interrupted or being retried)"
        if name in job.rewards:
            rec.reward, rec.reward_source = job.rewards[name], "job_result"
            detail += f"; the job result.json claims reward {job.rewards[name]}"
        return skip("incomplete", detail)

    # Names recorded inside result.json that disagree with the directory are suspicious but the
    # directory name is what the job-level stats use, so it stays the key.
    instance_id = _instance_id_from(trial_dir, config, result)
    if instance_id is None:
        return skip("missing_instance_id", "neither config.json task.path nor result.json task_name")
    if not _INSTANCE_ID_RE.match(instance_id):
        return skip("invalid_instance_id", f"instance id {instance_id!r} is not a plain name")
    rec.instance_id = instance_id
    rec.repo = repo_of_instance(instance_id)
    rec.agent_name = _agent_name_from(config, result)
    rec.model_name = _model_name_from(config, result)
    rec.metadata = _instance_metadata(config, result)
    if rec.repo:
        rec.metadata["repo"] = rec.repo

    if scaffold != "auto":
        rec.scaffold = scaffold
    elif rec.agent_name in AGENT_TO_SCAFFOLD:
        rec.scaffold = AGENT_TO_SCAFFOLD[rec.agent_name]
    else:
        return skip("unknown_scaffold", f"agent name {rec.agent_name!r} does not map to a scaffold")

    exc = result.get("exception_info")
    if isinstance(exc, dict):
        exc_type = exc.get("exception_type")
        rec.exception_type = exc_type if isinstance(exc_type, str) and exc_type else "UnknownException"
    elif exc is not None:
        rec.exception_type = "UnknownException"
    if rec.exception_type is None and name in job.exceptions:
        rec.exception_type = job.exceptions[name]

    if job.finished and name in job.rewards:
        rec.reward, rec.reward_source = job.rewards[name], "job_result"
    else:
        rec.reward, rec.reward_source = _trial_reward(trial_dir, result)

    if rec.repo and rec.repo.lower() in excluded_repos:
        return skip("excluded_repo", rec.repo)
    return rec


def apply_selection(rec: TrialRecord, selection: Selection, exception_policy: ExceptionPolicy) -> TrialRecord:
    """Set skip_reason on a trial that the selection or the exception policy rules out."""
    if rec.skip_reason is not None:
        return rec
    if rec.reward is None:
        rec.skip_reason = "exception" if rec.exception_type else "no_reward"
        rec.skip_detail = rec.exception_type or "no reward in job or trial results"
        return rec
    if rec.exception_type and exception_policy == "drop":
        rec.skip_reason, rec.skip_detail = "exception", f"{rec.exception_type} (exception_policy: drop)"
        return rec
    resolved = rec.reward >= 1.0
    if (selection == "resolved" and not resolved) or (selection == "unresolved" and resolved):
        rec.skip_reason = "not_selected"
        rec.skip_detail = f"reward {rec.reward} (selection: {selection})"
    return rec


def scan_job(
    job_dir: Path,
    scaffold: str = "auto",
    selection: Selection = "resolved",
    exception_policy: ExceptionPolicy = "keep_if_rewarded",
    excluded_repos: set[str] | None = None,
) -> tuple[list[TrialRecord], JobRewards]:
    """All child directories of the job as TrialRecords: selectable ones first, in the
    deterministic conversion order (`order_key`), then skipped ones by name."""
    if scaffold != "auto" and scaffold not in SCAFFOLDS:
        raise ValueError(f"unknown scaffold {scaffold!r}; expected one of {SCAFFOLDS} or 'auto'")
    job = read_job_rewards(job_dir)
    records: list[TrialRecord] = []
    with os.scandir(job_dir) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        try:
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = entry.is_symlink()  # a symlink loop raises here; inspect_trial names it
        if not is_dir and not entry.is_symlink():
            continue  # job-level files (config.json, result.json, job.log, lock.json)
        if entry.is_symlink() and not is_dir:
            try:
                Path(entry.path).resolve(strict=True)
                continue  # symlink to a file: not a trial
            except (OSError, RuntimeError):
                pass  # broken or looping symlink: report it
        rec = inspect_trial(job_dir, entry.name, job, scaffold, excluded_repos or set())
        records.append(apply_selection(rec, selection, exception_policy))
    records.sort(
        key=lambda r: (
            r.skip_reason is not None,
            r.order_key if r.skip_reason is None else ("", r.trial_name),
        )
    )
    return records, job
