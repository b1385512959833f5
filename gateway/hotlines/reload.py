"""``SIGHUP``: take ``config/`` as a new version if it changed and is valid as a whole.

A refused configuration leaves the running one (and Asterisk's dialplan) as it was;
calls in progress keep the version they started with either way. The outcome of the
last reload is shown in ``/healthz`` (``last_reload``).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from gateway.errors import ConfigError, GatewayError
from gateway.hotlines.service import HotlineAdmin
from gateway.ivr_flows.validate import read_files

log = logging.getLogger(__name__)


class ConfigReloader:
    def __init__(self, admin: HotlineAdmin, config_dir: Path) -> None:
        self.admin = admin
        self.config_dir = config_dir
        self.last_reload: dict | None = None

    async def reload(self) -> bool:
        admin = self.admin
        files = await asyncio.to_thread(read_files, self.config_dir)
        if files == admin.files:
            self.last_reload = {"ok": True, "version": admin.config.version, "changed": False}
            return True
        try:
            version = await admin.submit({"op": "replace_files", "files": files},
                                         comment="config/ reloaded (SIGHUP)", user="config/")
        except ConfigError as exc:
            self.last_reload = {"ok": False, "errors": [p.as_dict() for p in exc.problems]}
            log.error("configuration refused; keeping version %s:\n%s", admin.config.version, exc)
            return False
        except GatewayError as exc:
            self.last_reload = {"ok": False, "errors": [{"message": exc.message}]}
            log.error("configuration not applied: %s", exc)
            return False
        self.last_reload = {"ok": True, "version": admin.config.version, "config_version": version["id"]}
        return True
