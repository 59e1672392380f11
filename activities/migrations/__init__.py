"""Plain SQL migrations (``NNNN_name.sql``), applied in name order by :mod:`activities.db`.

A package so :mod:`importlib.resources` finds the files in an installed wheel too.
"""
