"""`python -m ctr_assets.cli`."""

from ctr_assets.cli import main

main()
