"""The ``stoneforge`` command: wiring only, see :mod:`stoneforge.cli`."""
