import pytest
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kernel.settings import MqttUrl, SettingsError, env_error_line, load_settings, redact_dsn


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


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("AGRI_DATABASE_URL", "mysql://agri:Hunter2-db-pass@db.example:5432/agri"),
        ("AGRI_DATABASE_URL", "postgresql:///agri?user=agri&password=Hunter2-db-pass"),
        ("AGRI_MQTT_URL", "http://agri:Hunter2-db-pass@broker:1883"),
    ],
)
def test_no_password_in_a_bad_settings_message(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    msg = str(exc.value)
    assert msg.startswith(f"{var}: ") and "Hunter2-db-pass" not in msg


def test_no_secret_field_value_in_an_error_whatever_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field typed as a secret is never quoted, even when its name does not look secret."""

    class S(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="AGRI_T_")
        pin: SecretStr = Field(min_length=12)
        uplink: str = Field(pattern=r"^mqtt://")

        @field_validator("pin")
        @classmethod
        def _pin(cls, v: SecretStr) -> SecretStr:
            raise ValueError(f"{v.get_secret_value()} is a weak pin")

    monkeypatch.setenv("AGRI_T_PIN", "4711-0815-4711")
    monkeypatch.setenv("AGRI_T_UPLINK", "https://gw:Tok3n-in-url@central")
    with pytest.raises(ValidationError) as exc:
        S()
    msg = env_error_line(exc.value, S, "AGRI_T_")
    assert "AGRI_T_PIN" in msg and "AGRI_T_UPLINK" in msg
    assert "4711-0815-4711" not in msg and "Tok3n-in-url" not in msg
    assert "https://gw:***@central" in msg  # the rest of a bad value is still shown
