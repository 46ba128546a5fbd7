"""Report: figures (matplotlib, headless) and the HTML/Markdown rendering of results.

`figures` draws scenes, predictions, curves and bars into PNG files (atomically); `render` writes a list
of blocks as Markdown and as a self-contained HTML page; `document` turns the demo's metrics.json into
those blocks. May import the shared utilities, `tinypred.data` and `tinypred.evaluation`; it reads
results as plain dicts and arrays, so it needs nothing of training.
"""
