"""The tools of a training job, shared by the fine-tuning loop (``trainables.loop``) and the BTF MLM job
(``trainables.task_fitting.worker``):

- ``optim``: AdamW with the usual weight-decay groups, the learning-rate schedules, one optimizer step;
- ``precision``: bf16 autocast where the GPU supports it;
- ``seeding``: seeding every generator at the start, and reseeding from (seed, step, rank);
- ``distributed``: where a process sits in the run (``DistContext``) and the model inside DDP;
- ``divergence``: the training loss since the last report, and the check that it is still finite;
- ``resume``: a checkpoint's training state (``RunState``, optimizer and schedule), written and read back;
- ``data_order``: the seeded training order a resumed run can start part-way through an epoch;
- ``pace``: throughput, the ETA and what a run trained on (samples, non-padding tokens);
- ``memory``: the run's peak GPU memory;
- ``speed``, ``padding_free``, ``compilation``: the speed settings (off by default), the training step's
  collation and loss with packed rows or a compiled, length-bucketed forward.

Nothing here imports Ray, the methods or the loop.
"""
