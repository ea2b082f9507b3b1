"""`python -m gateway.cli`: the same CLI as the `tac-gateway` console script."""

from gateway.cli import main

main()
