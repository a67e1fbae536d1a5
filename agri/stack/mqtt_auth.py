"""MQTT accounts and ACLs for Mosquitto's password file + ACL file.

The registry (``accounts.json``) is the source of truth; ``passwd`` and ``acl`` are rendered from
it and written atomically, then the broker re-reads them on SIGHUP, so new node credentials take
effect without a restart. Passwords are stored only as Mosquitto ``$7$`` hashes
(PBKDF2-HMAC-SHA512), the format ``mosquitto_passwd`` writes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from kernel.protocol import ROOT, check_id
from store.credentials import (  # re-exported: the hashing lives in store so the API can use it
    PBKDF2_ITERATIONS as PBKDF2_ITERATIONS,
)
from store.credentials import hash_password
from store.credentials import new_password as new_password
from store.credentials import node_username as node_username
from store.credentials import verify_password as verify_password

Role = Literal["admin", "ingest", "api", "gateway", "node", "monitor"]


@dataclass
class Account:
    username: str
    pw_hash: str
    role: Role
    farm: str | None = None
    node: str | None = None

    def acl_lines(self) -> list[str]:
        r = ROOT
        if self.role == "admin":
            return ["topic readwrite #"]
        if self.role == "ingest":
            # Consumes node and gateway uplinks, reads statuses and gateway health.
            return [f"topic read {r}/#"]
        if self.role == "api":
            # Publishes retained node configs; reads everything under the root.
            return [f"topic read {r}/#", f"topic write {r}/+/+/config"]
        if self.role == "monitor":
            return [f"topic read {r}/#", "topic read $SYS/#"]
        if self.role == "gateway":
            f = self.farm
            return [
                f"topic read {r}/{f}/+/up",
                f"topic read {r}/{f}/+/status",
                f"topic write {r}/{f}/gw/{self.node}/batch",
                f"topic readwrite {r}/{f}/gw/{self.node}/health",
                f"topic readwrite {r}/{f}/+/config",
            ]
        # A node publishes only under its own topic and reads only its own config and firmware
        # updates (manifest .../ota and chunks .../ota/c/<k>; agri.node.ota).
        base = f"{r}/{self.farm}/{self.node}"
        return [
            f"topic write {base}/up",
            f"topic write {base}/status",
            f"topic read {base}/config",
            f"topic read {base}/ota/#",
        ]


class MqttAuth:
    """Account registry under ``root``: ``accounts.json`` -> ``passwd`` + ``acl``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.registry = root / "accounts.json"
        self.passwd = root / "passwd"
        self.acl = root / "acl"
        self._accounts: dict[str, Account] = {}
        self.load()

    def load(self) -> None:
        if self.registry.exists():
            raw = json.loads(self.registry.read_text())
            self._accounts = {a["username"]: Account(**a) for a in raw.get("accounts", [])}

    def accounts(self) -> list[Account]:
        return sorted(self._accounts.values(), key=lambda a: a.username)

    def get(self, username: str) -> Account | None:
        return self._accounts.get(username)

    def set(
        self, username: str, password: str, role: Role, farm: str | None = None, node: str | None = None
    ) -> Account:
        if not username or any(c in username for c in ":\n# ") or len(username) > 100:
            raise ValueError(f"invalid MQTT username {username!r}")
        if role in ("gateway", "node"):
            check_id("farm", farm or "")
            check_id("gateway" if role == "gateway" else "node", node or "")
        acc = Account(username=username, pw_hash=hash_password(password), role=role, farm=farm, node=node)
        self._accounts[username] = acc
        return acc

    def set_hashed(self, username: str, pw_hash: str, farm: str, node: str) -> Account:
        """A node account from a stored ``$7$`` hash (credentials made by the HTTP API)."""
        check_id("farm", farm)
        check_id("node", node)
        if not pw_hash.startswith("$7$"):
            raise ValueError(f"not a $7$ hash for {username!r}")
        acc = Account(username=username, pw_hash=pw_hash, role="node", farm=farm, node=node)
        self._accounts[username] = acc
        return acc

    def add_node(self, farm: str, node: str, password: str | None = None) -> tuple[str, str]:
        """Create or rotate a node's credentials; returns (username, password)."""
        password = password or new_password()
        user = node_username(farm, node)
        self.set(user, password, "node", farm, node)
        return user, password

    def remove(self, username: str) -> bool:
        return self._accounts.pop(username, None) is not None

    def render_passwd(self) -> str:
        return "".join(f"{a.username}:{a.pw_hash}\n" for a in self.accounts())

    def render_acl(self) -> str:
        out = [
            "# Generated by agri from accounts.json; do not edit.\n",
            "# Every client may read its own broker-status notifications.\n",
            "pattern read $SYS/broker/connection/%c/state\n",
        ]
        for a in self.accounts():
            out.append(f"\nuser {a.username}\n")
            out.extend(line + "\n" for line in a.acl_lines())
        return "".join(out)

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.registry, json.dumps({"accounts": [asdict(a) for a in self.accounts()]}, indent=1))
        _atomic_write(self.passwd, self.render_passwd())
        _atomic_write(self.acl, self.render_acl())


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
