"""Connecting to Temporal: one place that knows the data converter, TLS and API keys.

Workers (``worker/``) and every client surface (``starter/``) connect through here, so a
Temporal Cloud or mTLS cluster is a matter of environment variables only.
"""

from __future__ import annotations

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from schemas.settings import Settings


def tls_config(settings: Settings) -> TLSConfig | bool:
    """What ``Client.connect`` gets for ``tls=``, from the TEMPORAL_TLS_* settings.

    - client cert + key: mutual TLS (a self-hosted cluster's mTLS, Temporal Cloud with certs);
    - a CA or a server name alone: TLS verified against that CA / for that name;
    - TEMPORAL_TLS=true or an API key alone: TLS against the system's roots (Temporal Cloud);
    - nothing: plaintext (a dev server, a cluster on a private network).
    """
    cert, key = settings.temporal_tls_cert, settings.temporal_tls_key
    if bool(cert) != bool(key):
        raise ValueError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together")
    if cert or settings.temporal_tls_ca or settings.temporal_tls_server_name:
        return TLSConfig(
            client_cert=cert.read_bytes() if cert else None,
            client_private_key=key.read_bytes() if key else None,
            server_root_ca_cert=(
                settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca else None
            ),
            domain=settings.temporal_tls_server_name,
        )
    return bool(settings.temporal_tls or settings.temporal_api_key)


async def connect_temporal(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    """A client; ``runtime`` carries a worker's metrics endpoint (``worker.telemetry``)."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=tls_config(settings),
        api_key=api_key,
        runtime=runtime,
    )
