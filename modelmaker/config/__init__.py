"""The config schema and loader of modelmaker: one YAML file drives a whole run."""
from .errors import ConfigError, ConfigIssue
from .load import ExtensionLoader, apply_overrides, config_from_dict, dump_resolved, load_config, parse_overrides
from .schema import (CommonSection, CompilationSection, Config, DatasetSection, FeatureExtractionSection,
                     TestingSection, TrainingSection, TransformSpec)

__all__ = [
    "CommonSection", "CompilationSection", "Config", "ConfigError", "ConfigIssue", "DatasetSection",
    "ExtensionLoader", "FeatureExtractionSection", "TestingSection", "TrainingSection", "TransformSpec",
    "apply_overrides", "config_from_dict", "dump_resolved", "load_config", "parse_overrides",
]
