"""Process configuration from the environment (pydantic-settings).

This and ``policy_file`` are the only modules of ``schemas`` that read the outside world:
the environment here, one YAML file there.
"""

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

TASK_QUEUE = "incidentflow"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = TASK_QUEUE
    temporal_tls: bool = False
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_ca: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None

    database_url: str | None = None
    incidentflow_policy: Path = Path("examples/policy.yaml")
    incidentflow_base_url: str | None = None
    incidentflow_templates: Path | None = Field(
        default=None, description="directory whose templates override the built-in ones"
    )

    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_from: str = "incidentflow@localhost"

    db_pool_min: int = 1
    db_pool_max: int = 10
