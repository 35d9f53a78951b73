"""Training: the run config, the loop, the losses, and the design document's step 6 made inspectable.

Lives here: ``config`` (typed TOML config), ``loop`` (the training loop, DDP from torchrun's environment),
``losses``, ``feature_augment``, ``checkpoint`` (atomic saving, resuming), ``warm_start`` (``init_from``),
``weight_average`` (model soups), ``metrics_log``, and the backpropagation tools: ``diagnostics`` (gradient
norms and checks), ``manual_forward``, ``manual_backward``, ``memory``, ``gradient_report``.
May import: everything below it (``models``, ``data``, ``audio``, ``names``). Nothing imports it but the CLI.
"""
