"""The composition root: the one package that imports both ``worker`` and ``starter``.

- :mod:`launcher.cli`: the ``incidentflow`` entry point; the client commands of
  ``starter.cli`` plus the process commands ``dev``, ``worker`` and ``migrate``;
- :mod:`launcher.dev`: ``incidentflow dev``, the embedded stack (Temporal dev server,
  PostgreSQL, mail catcher, worker and API in one process);
- :mod:`launcher.mail_catcher`: the dev stack's SMTP sink.

Nothing imports this package (tests/test_import_rules.py holds that).
"""
