import pytest

from kernel.settings import MqttUrl, SettingsError, load_settings, redact_dsn


def test_defaults_are_development(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("AGRI_MODE", "AGRI_DATABASE_URL", "AGRI_MQTT_URL"):
        monkeypatch.delenv(k, raising=False)
    s = load_settings()
    assert s.mode == "development"
    assert s.embedded_db and s.embedded_mqtt
    assert s.pg_port != 5432 and s.mqtt_port != 1883


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("AGRI_PG_PORT", "abc", "AGRI_PG_PORT"),
        ("AGRI_MQTT_PORT", "70000", "AGRI_MQTT_PORT"),
        ("AGRI_DATABASE_URL", "mysql://x@h/db", "AGRI_DATABASE_URL: must be a postgresql:// URL"),
        ("AGRI_MQTT_URL", "http://broker:1883", "AGRI_MQTT_URL: scheme must be mqtt://"),
        ("AGRI_MQTT_URL", "mqtt://host:notaport", "AGRI_MQTT_URL: bad port"),
        ("AGRI_MODE", "prod", "AGRI_MODE"),
        ("AGRI_LOG_LEVEL", "loud", "AGRI_LOG_LEVEL"),
    ],
)
def test_bad_value_names_the_variable_in_one_line(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    msg = str(exc.value)
    assert needle in msg
    assert "\n" not in msg


def test_production_refuses_missing_and_default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGRI_MODE", "production")
    with pytest.raises(SettingsError, match="AGRI_SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("AGRI_SECRET_KEY", "changethis")
    monkeypatch.setenv("AGRI_ADMIN_TOKEN", "x" * 40)
    with pytest.raises(SettingsError, match="AGRI_SECRET_KEY: production mode needs a non-default secret"):
        load_settings()
    monkeypatch.setenv("AGRI_SECRET_KEY", "y" * 8)
    with pytest.raises(SettingsError, match="at least 16"):
        load_settings()
    monkeypatch.setenv("AGRI_SECRET_KEY", "a-real-secret-of-enough-length")
    s = load_settings()
    assert s.mode == "production"


def test_secret_values_are_not_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGRI_MODE", "production")
    monkeypatch.setenv("AGRI_SECRET_KEY", "short-secret")
    monkeypatch.setenv("AGRI_ADMIN_TOKEN", "x" * 40)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert "short-secret" not in str(exc.value)


def test_mqtt_url_parsing_and_redaction() -> None:
    u = MqttUrl("mqtt://node%2Fa:p%40ss@broker.example:1884")
    assert (u.host, u.port, u.username, u.password, u.tls) == (
        "broker.example",
        1884,
        "node/a",
        "p@ss",
        False,
    )
    assert "p@ss" not in u.public()
    assert MqttUrl("mqtts://h").port == 8883
    assert redact_dsn("postgresql://agri:pw@db:5432/agri") == "postgresql://agri@db:5432/agri"
