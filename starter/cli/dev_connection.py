"""Where ``incidentflow dev`` left its servers: ``<data-dir>/connection.json``.

The dev launcher writes the Temporal address and namespace, the database URL, the API's URL
and the acknowledge-link secret there once they are up; ``verify``, ``migrate``, ``worker``
and ``api`` read it (``--data-dir``, default ``.data``) for every setting the environment
does not give, so they find a running ``make run`` without exporting anything. The file is
kept after the stack stops: the next command then reports the stack unreachable rather than
a missing setting, which is the truth.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel, SecretStr, ValidationError

from schemas.settings import Settings

FILE_NAME = "connection.json"
DEFAULT_DATA_DIR = Path(".data")

#: the ``--data-dir`` option of every command that can use a running dev stack
DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="Data dir of `incidentflow dev`: its connection.json supplies Temporal and "
        "DATABASE_URL when the environment does not set them.",
    ),
]


class DevConnection(BaseModel):
    """Contents of ``<data-dir>/connection.json``."""

    temporal_address: str
    temporal_namespace: str
    database_url: str
    api_url: str
    #: signs the acknowledge links of pages (generated once per data dir)
    link_secret: str | None = None
    #: the launcher that wrote it
    pid: int


def connection_path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def write_connection(data_dir: Path, info: DevConnection) -> None:
    """Atomically, readable by this user only (it holds a database password and a secret)."""
    path = connection_path(data_dir)
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(info.model_dump_json(indent=2) + "\n")
    tmp.replace(path)


def read_connection(data_dir: Path) -> DevConnection | None:
    """The dev stack's connection info, or ``None`` when there is none (or it is unreadable)."""
    try:
        return DevConnection.model_validate(json.loads(connection_path(data_dir).read_text()))
    except (OSError, ValueError, ValidationError):
        return None


def settings_with_dev_stack(data_dir: Path, env: Settings | None = None) -> Settings:
    """The environment's settings; what the environment leaves unset comes from the dev stack
    in ``data_dir``, if one wrote its connection info there."""
    settings = env if env is not None else Settings()
    info = read_connection(data_dir)
    if info is None:
        return settings
    given = settings.model_fields_set
    update: dict[str, object] = {}
    if "temporal_address" not in given:  # a namespace of another server would be wrong
        update["temporal_address"] = info.temporal_address
        if "temporal_namespace" not in given:
            update["temporal_namespace"] = info.temporal_namespace
    if "database_url" not in given:
        update["database_url"] = info.database_url
    if "incidentflow_base_url" not in given:
        update["incidentflow_base_url"] = info.api_url
    if "incidentflow_link_secret" not in given and info.link_secret:
        update["incidentflow_link_secret"] = SecretStr(info.link_secret)
    return settings.model_copy(update=update)


def dev_credentials_allowed(data_dir: Path) -> bool:
    """May ``worker`` / ``api`` serve a policy holding the published development credentials?

    Only beside a running ``incidentflow dev``: when its connection info supplies the Temporal
    address (the environment sets none), or when INCIDENTFLOW_ALLOW_DEV_CREDENTIALS says so.
    A deployment sets TEMPORAL_ADDRESS, so it never qualifies by the first rule.
    """
    env = Settings()
    if env.incidentflow_allow_dev_credentials:
        return True
    return "temporal_address" not in env.model_fields_set and read_connection(data_dir) is not None
