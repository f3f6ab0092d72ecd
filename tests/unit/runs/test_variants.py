"""`sft variants`: variant files (not their .output.yaml), run dir, last status, invalid ones reported."""

from __future__ import annotations

import json

from sftpipe.cli import main
from sftpipe.runs.variants import list_variants

from tests.project import make_project
from tests.unit.runs.run_files import add_entry


def test_variants_listing(tmp_path, capsys):
    root = make_project(tmp_path / "proj")
    vdir = root / "config/variants"
    vdir.mkdir(parents=True, exist_ok=True)
    for old in vdir.glob("*.yaml"):
        old.unlink()
    (vdir / "lr_high.yaml").write_text(
        "runtime_info:\n  input:\n    training:\n      learning_rate: 3.0e-3\n"
    )
    (vdir / "lr_high.output.yaml").write_text(
        "runtime_info:\n  output:\n    checkpoint_path: artifacts/model/x/checkpoint-8/\n"
    )
    (vdir / "broken.yaml").write_text("runtime_info:\n  input:\n    training:\n      cutoff_len: 40000\n")
    (vdir / "never.yaml").write_text("runtime_info:\n  input:\n    training:\n      save_steps: 2\n")
    add_entry(root, root / "artifacts/model/demo_sft-lr_high", status="failed", variant="lr_high")
    last = add_entry(
        root,
        root / "artifacts/model/demo_sft-lr_high",
        status="completed",
        variant="lr_high",
        final_loss=1.25,
    )

    rows = {r["variant"]: r for r in list_variants(root)}
    assert set(rows) == {"lr_high", "broken", "never"}
    hi = rows["lr_high"]
    assert (hi["status"], hi["last_run"], hi["runs"], hi["final_loss"]) == ("completed", last, 2, 1.25)
    assert hi["checkpoint_path"] == "artifacts/model/x/checkpoint-8/" and hi["valid"]
    assert rows["never"]["status"] is None and rows["never"]["runs"] == 0 and rows["never"]["run_dir"]
    assert not rows["broken"]["valid"] and "rope_scaling" in rows["broken"]["problems"][0]

    assert main(["variants", "--root", str(root), "--json"]) == 0
    assert {r["variant"] for r in json.loads(capsys.readouterr().out)} == set(rows)
    assert main(["variants", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "INVALID" in out and "never run" in out
