"""The pieces of the trainer, one responsibility each; :func:`noisemod.train.fit` puts them together.

- :mod:`.runtime`: where a run executes: the device, the process group under ``torchrun``, signals
  (SIGINT/SIGTERM stop after a checkpoint), and provenance (git commit, versions);
- :mod:`.build`: the data, model, method, optimizer and schedule of a run (:class:`~.build.Training`);
- :mod:`.epoch`: one epoch of training steps and where training stands (:class:`~.epoch.RunState`);
- :mod:`.checkpoints`: the run directory's checkpoint policy: resume or refuse, last.pt, best.pt;
- :mod:`.monitor`: TensorBoard event files.

Test-set evaluation, which ``noisemod evaluate`` shares with ``fit``, is :mod:`noisemod.evaluation`.
Nothing here imports :mod:`noisemod.train`: the data flow goes down from ``fit`` and comes back once.
"""
