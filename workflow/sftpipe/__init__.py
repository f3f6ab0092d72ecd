"""sftpipe: trajectories -> LLaMA-Factory SFT pipeline."""
