"""One module per channel kind; each exposes an async ``send_*`` raising ``DeliveryError``."""
