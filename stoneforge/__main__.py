"""``python -m stoneforge``: the same as the ``stoneforge`` command."""

from stoneforge.cli import main

main()
