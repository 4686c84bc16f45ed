"""Training: the train state (``state``), the jitted steps (``steps``), the update rules and
schedules (``optimizers``), the one loop (``loop``), checkpoints, divergence and preemption
handling, the run directory (``run_dir``) and what a run reports (``summaries``)."""
