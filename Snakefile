# sftpipe: Harbor trajectories -> LLaMA-Factory SFT -> run records.
# trajectory conversion -> dataset registration -> training -> metrics -> plot -> write-back -> run history
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        RECORD,
    default_target: True
