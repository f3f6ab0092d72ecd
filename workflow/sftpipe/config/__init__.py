"""Typed, validated config: schema (defaults, types) → load (YAML, variants) → rules (cross-field) → RunConfig."""

from sftpipe.config.load import deep_merge, load, load_variant, read_yaml, redacted, resolve
from sftpipe.config.rules import (
    CREDENTIAL_ENV,
    config_warnings,
    cross_field_problems,
    is_buildable_demo_model,
    rotation_guard,
    unknown_training_keys,
)
from sftpipe.config.run_config import RunConfig, stable_hash
from sftpipe.config.schema import ConfigError, apply_defaults, defaults_of, load_schema, schema_problems

__all__ = [
    "CREDENTIAL_ENV",
    "ConfigError",
    "RunConfig",
    "apply_defaults",
    "config_warnings",
    "cross_field_problems",
    "deep_merge",
    "defaults_of",
    "is_buildable_demo_model",
    "load",
    "load_schema",
    "load_variant",
    "read_yaml",
    "redacted",
    "resolve",
    "rotation_guard",
    "schema_problems",
    "stable_hash",
    "unknown_training_keys",
]
