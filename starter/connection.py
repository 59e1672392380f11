"""Connecting to Temporal: one place that knows the data converter, TLS and API keys.

Workers (``worker/``) and every client surface (``starter/``) connect through here, so a
Temporal Cloud or mTLS cluster is a matter of environment variables only.
"""

from __future__ import annotations

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter

from schemas.settings import Settings


def tls_config(settings: Settings) -> TLSConfig | bool:
    """mTLS when a client cert is configured; plain TLS when only asked for (Temporal Cloud)."""
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        return TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
            server_root_ca_cert=(
                settings.temporal_tls_ca.read_bytes() if settings.temporal_tls_ca else None
            ),
            domain=settings.temporal_tls_server_name,
        )
    return bool(settings.temporal_tls or settings.temporal_api_key)


async def connect_temporal(settings: Settings) -> Client:
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=tls_config(settings),
        api_key=api_key,
    )
