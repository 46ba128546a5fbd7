"""`python -m tinypred ...`: the same command line as `tinypred ...` (what torchrun's -m runs:
`torchrun --nproc_per_node N -m tinypred train ...`)."""

from tinypred.cli import main

main()
