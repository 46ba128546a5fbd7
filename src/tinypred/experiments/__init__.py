"""Experiments: the loss ablation, wall-clock training time per device, and the demo pipeline.

`ablation` (the runs and their mode-averaging measures), `devices` (training time per device and
precision) and `demo` (the main job: data -> baselines -> training -> test -> ablation -> device timing
-> figures -> report). May import everything below it: the shared utilities, `tinypred.data`,
`tinypred.evaluation`, `tinypred.predictors`, `tinypred.training` and `tinypred.report`.
"""
