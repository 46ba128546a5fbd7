"""tinypred: a tiny learned multimodal trajectory predictor for road agents, and backprop you can read.

The folders are the architecture; data flows one way, top to bottom, and no module imports a later one:

    errors, fileio, geometry, config, lazy   shared utilities (no tinypred imports beyond errors)
    data/          synthetic scenes, the agent-frame encoding, dataset files, export formats
    evaluation/    the motion-forecasting metrics, NLL scale fitting, result tables per slice
    predictors/    the Prediction type and predicting on a split, baselines, the MLP, its losses
    training/      the training loop, one training step, checkpoints and resume, the run log
    report/        figures and the HTML/Markdown rendering
    experiments/   the loss ablation, device timing and the demo pipeline
    diagnostics/   training-craft checks, one per file: measure -> verdict -> figure
    backprop/      a reverse-mode autodiff engine and hand-derived blocks, checked against torch
                   (self-contained: it imports nothing of the rest)
    cli            the `tinypred` command: a thin skin over all of it

`from tinypred import Predictor` (`predictors.api`) is the one name the package itself offers, imported
on first use so that `import tinypred` stays light.
"""

from tinypred.lazy import lazy_exports

__version__ = "0.3.0"

# `from tinypred import Predictor`, imported on first use: `import tinypred` stays light (no torch).
__getattr__ = lazy_exports(__name__, {"Predictor": "predictors.api"})
