"""modelmaker: turns one YAML config into calls of tinyverse, and owns the run folder and the CLI."""
__version__ = "0.1.0"
