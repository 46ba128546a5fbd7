"""Argoverse 2 in and out: motion-forecasting scenarios and their maps, read and written with pyarrow
and json (never the heavy `av2` package), and challenge submissions.

`schema` is the format as the av2 API defines it (its loaders `load_argoverse_scenario_parquet` and
`ArgoverseStaticMap.from_json` and its `ChallengeSubmission` settle every detail); `reader` parses one
scenario folder with one-line errors; `importer` turns scenarios into samples of tinypred's encoding,
shard by shard; `exporter` writes any dataset's samples as scenario folders; `submission` writes
predictions as a challenge submission. Part of `tinypred.data`: it may import what `data` may.
"""
