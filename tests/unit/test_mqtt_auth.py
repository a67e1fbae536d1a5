import base64
import subprocess

import pytest

from agri.stack.mqtt_auth import MqttAuth, hash_password, verify_password


def test_hash_matches_mosquitto_passwd_format(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # mosquitto_passwd writes $7$ (PBKDF2-SHA512); our hash of the same password+salt must match it.
    pwfile = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pwfile), "alice", "s3cret"], check=True)
    encoded = pwfile.read_text().strip().split(":", 1)[1]
    _, _, it, salt, _ = encoded.split("$")
    assert hash_password("s3cret", base64.b64decode(salt), int(it)) == encoded
    assert verify_password("s3cret", encoded)
    assert not verify_password("wrong", encoded)


def test_node_acl_is_limited_to_its_own_topics(tmp_path) -> None:  # type: ignore[no-untyped-def]
    auth = MqttAuth(tmp_path)
    user, _ = auth.add_node("farm-a", "n-1")
    auth.save()
    acl = auth.acl.read_text()
    block = acl.split(f"user {user}\n", 1)[1].split("\n\n", 1)[0]
    assert block.splitlines() == [
        "topic write agri/v1/farm-a/n-1/up",
        "topic write agri/v1/farm-a/n-1/status",
        "topic read agri/v1/farm-a/n-1/config",
        "topic read agri/v1/farm-a/n-1/ota/#",
    ]
    assert oct(auth.passwd.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("bad", ["", "a:b", "with space", "x" * 101])
def test_bad_usernames_are_refused(tmp_path, bad: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        MqttAuth(tmp_path).set(bad, "pw", "admin")


def test_bad_node_ids_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="node id"):
        MqttAuth(tmp_path).add_node("farm-a", "Bad_Node")
    with pytest.raises(ValueError, match="reserved"):
        MqttAuth(tmp_path).add_node("farm-a", "gw")
