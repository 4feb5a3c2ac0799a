"""Human-readable help for the time-series tasks, shown by the CLI."""
TASK_DESCRIPTIONS = {
    "classification": "Assign one label to each window of a (multi-channel) sensor signal; metric: accuracy.",
}
