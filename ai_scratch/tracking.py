"""Which wandb mode a run can really use: online, offline or disabled.

The mode comes from ``--wandb_mode`` or ``WANDB_MODE`` (``online`` when neither says). A run asked
to go online without credentials or without a route to the wandb server does not fail and does
not hang: it falls back to offline with one warning, and the offline run can be uploaded later
with ``wandb sync``.
"""

from __future__ import annotations

import netrc
import os
import socket
from urllib.parse import urlparse

WANDB_MODES = ("online", "offline", "disabled")
# wandb's own older spellings
_ALIASES = {"dryrun": "offline", "run": "online"}


class TrackingError(ValueError):
    """A wrong tracking setting, reported to the user in one line."""


def requested_mode(flag: str | None) -> str:
    """The mode asked for by the flag, else ``WANDB_MODE``, else ``online``; validated."""
    source, mode = ("--wandb_mode", flag) if flag else ("WANDB_MODE", os.environ.get("WANDB_MODE") or "online")
    mode = _ALIASES.get(mode.strip().lower(), mode.strip().lower())
    if mode not in WANDB_MODES:
        raise TrackingError(f"unknown wandb mode {mode!r} from {source}: use one of {', '.join(WANDB_MODES)}")
    return mode


def wandb_host() -> str:
    return urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"


def has_credentials() -> bool:
    """An API key in the environment, an identity token file, or a ``~/.netrc`` entry for the host."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        return netrc.netrc(path).authenticators(wandb_host()) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def server_reachable(timeout: float = 2.0) -> bool:
    """Whether a TCP connection to the wandb server opens within ``timeout`` seconds."""
    url = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "api.wandb.ai", port), timeout=timeout):
            return True
    except OSError:
        return False


def resolve_mode(flag: str | None) -> tuple[str, str | None]:
    """The mode to use and, when it differs from the one asked for, the one-line reason."""
    mode = requested_mode(flag)
    if mode != "online":
        return mode, None
    if not has_credentials():
        return "offline", (
            "wandb: no credentials (WANDB_API_KEY or `wandb login`), so this run is logged offline; "
            "upload it later with `wandb sync <run dir>`"
        )
    if not server_reachable():
        return "offline", (
            f"wandb: {wandb_host()} cannot be reached, so this run is logged offline; "
            "upload it later with `wandb sync <run dir>`"
        )
    return mode, None
