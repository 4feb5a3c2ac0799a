"""``modelmaker search``: the best zoo model, width, depth, input features and recipe that fit a device.

- :mod:`modelmaker.search.space`: the search space, and a sampled point as ordinary config overrides;
- :mod:`modelmaker.search.trial`: one trial (device check before training, short training with pruning);
- :mod:`modelmaker.search.pareto`: the Pareto front, the report and its plot;
- :mod:`modelmaker.search.study`: the Optuna study, its workers, the finalists' int8 check and the final run.

Nothing is imported here: the CLI's error handling imports :mod:`modelmaker.search.errors` without loading Optuna.
"""
