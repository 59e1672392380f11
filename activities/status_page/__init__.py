"""The status page's mail: subscription confirmations and public updates to subscribers."""
