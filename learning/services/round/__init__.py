"""A learning round, stage by stage, as the worker runs it.

    queued -> training (IQA classifier if new coverage labels, segmenter, warm start)
           -> predicting (batches of blocks x sources, gpu queue: mask GeoTIFF + polygons,
                          coverage type)
           -> scoring (batches of predictions, cpu queue: the 16 features; then the correctness
                       model, retrained when new verdicts exist, gives p_incorrect)
           -> evaluating (per province: IoU on held-out samples, correctness, area vs official,
                          stopping rules) -> selecting (next blocks) -> done

``machine`` holds the transition table and the only writes of the round's state; ``driver``
starts what a state needs; one module per stage (``train``, ``predict``, ``score``,
``evaluate``, ``select``, ``finish``) with ``batches`` for the fanned-out ones; ``reconcile``
resumes rounds whose worker died; ``lifecycle`` starts and cancels rounds; ``progress`` holds
the log, heartbeat, lease and progress event; ``dispatch`` queues tasks by name, so nothing here
imports ``learning.tasks``.

Every step works out what is left from the database (the round row, its checkpoint, the batch
table, existing predictions), so a task delivered twice or re-queued by the reconciler redoes
nothing that is finished. Long single-flight steps (training, scoring) hold the round's lease
and heartbeat from a thread; a cancel or a lost lease stops them at the next training step.

Nothing is imported here, so that the web process can import ``lifecycle`` without the stages.
"""
