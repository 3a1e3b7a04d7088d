"""fakehub's REST API under ``/api/v3``, with GitHub's paths and shapes.

- ``context``: what a handler gets (:class:`~fakehub.rest.context.Ctx`) and returns, and
  pagination; ``endpoint``: a handler as a Starlette endpoint (headers, faults, errors).
- The route modules, each exporting ``TABLE``: ``apps`` (App and installations), ``repos``,
  ``issues``, ``comments``, ``dependencies`` (issue dependencies and sub-issues), ``pulls``,
  ``reviews``, ``checks`` (check runs and statuses), ``actions`` (``workflow_dispatch``).
- ``routes``: joins the tables. Only it imports the route modules; they import ``context``
  and each other's helpers, never ``routes`` (tests/fakehub/test_layout.py holds the graph
  acyclic).
"""
