"""Helpers with no knowledge of the pipeline: files, time text, YAML scalars, redaction, git."""
