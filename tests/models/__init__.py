"""Scripted model servers on loopback: the provider APIs the real agent CLIs speak, answered from
a scenario instead of a model, so each adapter is tested against its real, pinned binary (issue 11).

- ``scenario``: the abstract steps of a scenario (write a file, run a command, say, fail, stall).
- ``server``: the HTTP plumbing every API shares (threaded, loopback, records every request).
- one module per wire format (``openai_chat``, ...), each a ``ScriptedServer`` subclass.
- ``netwatch``: proves a CLI reached nothing but its model server.
"""
