"""Print the URI of the Debian main archive this machine's apt is configured with.

Used by install.sh to add a deb-src line for the newer suite on the *same* mirror (never a
hard-coded host). Reads deb822 ``*.sources`` files and one-line ``sources.list`` entries.
"""

from __future__ import annotations

import pathlib
import sys

APT = pathlib.Path("/etc/apt")


def _candidates() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for f in sorted((APT / "sources.list.d").glob("*.sources")):
        for stanza in f.read_text(errors="replace").split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line:
                    continue
                key, _, val = line.partition(":")
                fields[key.strip().lower()] = val.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    out.append((uri, suite))
    lists = [APT / "sources.list", *sorted((APT / "sources.list.d").glob("*.list"))]
    for f in lists:
        if not f.exists():
            continue
        for line in f.read_text(errors="replace").splitlines():
            parts = line.split("#", 1)[0].split()
            if len(parts) >= 3 and parts[0] in ("deb", "deb-src"):
                rest = [p for p in parts[1:] if not p.startswith("[")]
                if len(rest) >= 2:
                    out.append((rest[0], rest[1]))
    return out


def main() -> int:
    for uri, suite in _candidates():
        if "security" in suite or "security" in uri:
            continue
        if suite.split("-")[0] in {"bookworm", "trixie", "stable", "testing", "sid", "unstable"}:
            print(uri.rstrip("/"))
            return 0
    print("no Debian archive configured in /etc/apt (sources.list or sources.list.d)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
