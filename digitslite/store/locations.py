"""Which stores digitslite knows: the embedded one shipped in model_store/, and those the user names.

$DIGITSLITE_STORE_URLS is a comma-separated list of store URLs or folders, as DIGITS'
DIGITS_MODEL_STORE_URL is; $DIGITSLITE_MODEL_STORE moves the embedded store (like
$DIGITSLITE_NETWORK_DEFS moves network_defs/).
"""
import os
from pathlib import Path

STORE_URLS_VARIABLE = "DIGITSLITE_STORE_URLS"
EMBEDDED_STORE_VARIABLE = "DIGITSLITE_MODEL_STORE"


def embedded_store_dir() -> Path:
    """The embedded store folder: $DIGITSLITE_MODEL_STORE, else the package's own model_store/."""
    configured = os.environ.get(EMBEDDED_STORE_VARIABLE)
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / "model_store"


def configured_store_urls() -> list[str]:
    """The stores named in $DIGITSLITE_STORE_URLS, in order."""
    return [url.strip() for url in os.environ.get(STORE_URLS_VARIABLE, "").split(",") if url.strip()]


def store_locations() -> list[str]:
    """Every store to list: the embedded one first, then the configured ones."""
    return [str(embedded_store_dir()), *configured_store_urls()]
