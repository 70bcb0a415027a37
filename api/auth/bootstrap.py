"""The embedded default stays one command: ``serve`` makes the ``local`` client's key.

When the key file is missing, or its key no longer names an active client (a
fresh instance, a new database), ``serve`` registers a new client of the
``local`` tenant and writes its key to the file with mode 0600, so the
README's curl example can read it. Nothing else ever writes a key to disk.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from api.auth.clients import LOCAL_TENANT, create_client, identify, now_us
from api.config import EXTENSION

#: Name of the key file in the instance folder.
LOCAL_KEY_FILE = "local-api-key"


def local_key_path(app: Flask) -> Path:
    configured = app.extensions[EXTENSION].settings.local_key_file
    return Path(configured) if configured else Path(app.instance_path) / LOCAL_KEY_FILE


def ensure_local_client(app: Flask) -> Path | None:
    """Write a working ``local`` key to the key file; its path when a new one was made."""
    state = app.extensions[EXTENSION]
    path = local_key_path(app)
    if path.exists():
        key = path.read_text(encoding="ascii").strip()
        if key and identify(state.clients, key, now_us()) is not None:
            return None
    created = create_client(state.clients, tenant=LOCAL_TENANT, label="embedded default")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file existed with wider permissions
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(created.api_key + "\n")
    return path


__all__ = ["LOCAL_KEY_FILE", "ensure_local_client", "local_key_path"]
