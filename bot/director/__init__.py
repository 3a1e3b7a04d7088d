"""The director: ``/stoneforge plan`` turns one issue (the epic) into a plan of sub-issues.

- ``bot/director/service.py`` ``Director`` (implements ``bot.ports.DirectorPort``): plan
  requests, the plan job (claimed like a task's job, ``bot.core.protocol.PlanJob``), its result
  validated (``bot.core.plan``), approval, replans, the plan comment, completion and the plan's
  budget; and each plan task's ``PlanContext`` for its jobs.
- ``bot/director/filing.py`` ``PlanFiler``: files a validated plan on GitHub, idempotently
  (hidden markers) and paced under GitHub's secondary rate limits.
"""
