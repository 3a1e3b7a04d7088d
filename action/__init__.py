"""The GitHub Action that runs one Stoneforge job on a GitHub Actions runner.

``action.yml`` (a composite action) installs this package and runs ``python -m action``, which
claims the job the bot dispatched through ``workflow_dispatch`` and runs it with the runner's
own code (``runner.loop.Runner``). See ``README.md`` beside this file.
"""
