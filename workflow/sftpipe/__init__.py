"""sftpipe: Harbor trajectories → LLaMA-Factory SFT data → a fine-tuned model, with run records.

Each Snakemake rule runs one `sft` command; each command is implemented in one subpackage
(argparse and printing live in `cli/`, the work in the subpackage named here):

    rule              command               implemented in
    ----------------  --------------------  ----------------------------------------------------
    build_tiny_model  sft build-tiny-model  data.tiny_model
    convert           sft convert-config    data.conversion (options: data.conversion.options)
    register          sft register          data.registration
    tokenize          sft tokenize          lf.checks (LLaMA-Factory's own preprocessing, CPU)
    train             sft train             training (train, run_dir, process, lf_entry)
    metrics           sft metrics           runs.metrics
    plot              sft plot              report.plotting
    writeback         sft writeback         report.record (report.output_block, report.writeback)
    record            sft record            report.record

Layers (tools/import_contract.py enforces them; a module imports only its own layer or layers to its left):

    util → paths → config → lf → data → slurm → runs → training → report → dashboard → cli

`paths` names every artifact and run-directory file; `runs.store` is the only reader/writer of a run
directory's records and `runs.index` of the run history; `plan` is used only by the Snakefile.
"""
