# sftpipe: Harbor trajectories -> LLaMA-Factory SFT -> run records.
# convert -> register -> tokenize -> train -> metrics -> plot -> writeback -> record
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    """Every requested run (active profile and/or --config variant(s)=...) trained and recorded."""
    default_target: True
    input:
        sftplan.targets(PLAN),
