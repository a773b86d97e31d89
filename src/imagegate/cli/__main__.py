"""`python -m imagegate.cli`: the same as the `imagegate` console script."""

from imagegate.cli import main

main()
