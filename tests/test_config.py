"""Configuration is strict: defaults fill what is left out, and anything
wrong (an unknown key, a wrong type, a bad time zone, a missing file) stops the
service with a sentence that names the file, the section and the key."""

from __future__ import annotations


import pytest

from restobox.config import Config, ConfigError, load, parse

MINIMAL = """
[device]
id = "kiosk-1"
role = "kiosk"
"""


def _error(text: str, source: str = "/etc/restobox/restobox.toml") -> str:
    with pytest.raises(ConfigError) as exc:
        parse(text, source)
    return str(exc.value)


# ------------------------------------------------------------ valid configs
def test_a_minimal_config_parses_with_defaults():
    cfg = parse(MINIMAL)
    assert isinstance(cfg, Config)
    assert (cfg.device.id, cfg.device.role) == ("kiosk-1", "kiosk")
    assert cfg.store.timezone == "Asia/Shanghai"
    assert cfg.store.business_day_start == "04:00"
    assert (cfg.mqtt.host, cfg.mqtt.port) == ("127.0.0.1", 1883)
    assert cfg.mqtt.keepalive_s == 15
    assert cfg.mqtt.session_expiry_s == 7 * 86_400
    assert cfg.mqtt.password_file is None
    assert cfg.hub.menu == "sample"
    assert cfg.hub.max_payload_bytes == 64 * 1024
    assert (cfg.hub.max_lines, cfg.hub.max_qty_per_line) == (50, 99)


def test_values_given_in_the_file_override_the_defaults():
    cfg = parse(MINIMAL + """
[store]
timezone = "Europe/London"
business_day_start = "23:59"

[mqtt]
host = "hub.local"
port = 8883
tls = true
ca_file = "/etc/restobox/store-ca.crt"
username = "kiosk-one"
reconnect_max_s = 2.5

[hub]
max_lines = 10
""")
    assert cfg.store.timezone == "Europe/London"
    assert cfg.store.business_day_start == "23:59"
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.reconnect_max_s) == ("hub.local", 8883, 2.5)
    assert cfg.hub.max_lines == 10
    assert cfg.mqtt_username() == "kiosk-one"


def test_the_mqtt_username_defaults_to_the_device_id():
    assert parse(MINIMAL).mqtt_username() == "kiosk-1"


# ------------------------------------------------------------ refusals
def test_an_unknown_key_is_refused_naming_the_key_the_section_and_the_file():
    msg = _error(MINIMAL + '[mqtt]\nhots = "hub.local"\n')
    assert "/etc/restobox/restobox.toml" in msg
    assert "unknown key `hots`" in msg
    assert "[mqtt]" in msg


def test_an_unknown_top_level_section_is_refused_naming_it():
    msg = _error(MINIMAL + "[printer]\nport = 1\n")
    assert "unknown key `printer`" in msg


def test_a_wrong_type_is_refused_naming_the_path():
    msg = _error(MINIMAL + '[mqtt]\nport = "1883"\n')
    assert "/etc/restobox/restobox.toml" in msg
    assert "mqtt.port" in msg
    assert "int" in msg


def test_a_number_out_of_range_is_refused_naming_the_path():
    msg = _error(MINIMAL + "[mqtt]\nport = 70000\n")
    assert "mqtt.port" in msg


def test_an_unknown_role_is_refused_naming_the_path():
    msg = _error('[device]\nid = "kiosk-1"\nrole = "toaster"\n')
    assert "device.role" in msg


@pytest.mark.parametrize("device_id", ["Kiosk-1", "kiosk/1", "kiosk 1", "kiosk+", ""])
def test_a_device_id_unusable_in_a_topic_is_refused(device_id):
    msg = _error(f'[device]\nid = "{device_id}"\nrole = "kiosk"\n')
    assert "device.id" in msg


def test_invalid_toml_is_refused_saying_so():
    msg = _error('[device\nid = "kiosk-1"\n')
    assert "/etc/restobox/restobox.toml is not valid TOML" in msg


def test_a_missing_device_section_is_refused_saying_so():
    msg = _error('[mqtt]\nhost = "hub.local"\n')
    assert "missing key `device`" in msg
    assert "/etc/restobox/restobox.toml" in msg


def test_a_missing_key_in_device_is_refused_naming_key_and_section():
    msg = _error('[device]\nid = "kiosk-1"\n')
    assert "missing key `role` in [device]" in msg


@pytest.mark.parametrize("tz", ["Mars/Olympus", "Asia/Shangai", "asia/shanghai", "America", "", "/etc/passwd",
                                "Asia/../Asia/Shanghai"])
def test_an_unknown_time_zone_is_refused(tz):
    msg = _error(MINIMAL + f'[store]\ntimezone = "{tz}"\n')
    assert f"unknown time zone {tz!r} in [store]" in msg
    assert "/etc/restobox/restobox.toml" in msg


@pytest.mark.parametrize("start", ["4:00", "24:00", "04:60", "0400", "04:00:00", "noon", ""])
def test_a_business_day_start_that_is_not_hh_mm_is_refused(start):
    msg = _error(MINIMAL + f'[store]\nbusiness_day_start = "{start}"\n')
    assert "store.business_day_start" in msg


@pytest.mark.parametrize("start", ["00:00", "04:00", "19:30", "23:59"])
def test_a_business_day_start_in_hh_mm_is_accepted(start):
    assert parse(MINIMAL + f'[store]\nbusiness_day_start = "{start}"\n').store.business_day_start == start


# ------------------------------------------------------------ files
def test_load_reads_the_file_it_is_given(tmp_path):
    p = tmp_path / "restobox.toml"
    p.write_text(MINIMAL, encoding="utf-8")
    assert load(p).device.id == "kiosk-1"


def test_load_names_the_file_in_a_config_error(tmp_path):
    p = tmp_path / "restobox.toml"
    p.write_text(MINIMAL + "[mqtt]\nhots = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=str(p)):
        load(p)


def test_load_takes_the_path_from_restobox_config(tmp_path, monkeypatch):
    p = tmp_path / "other.toml"
    p.write_text(MINIMAL.replace("kiosk-1", "kiosk-9"), encoding="utf-8")
    monkeypatch.setenv("RESTOBOX_CONFIG", str(p))
    assert load().device.id == "kiosk-9"


def test_load_of_a_missing_file_says_it_does_not_exist(tmp_path):
    p = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as exc:
        load(p)
    assert str(exc.value) == f"config file {p} does not exist"


def test_load_of_a_directory_is_a_config_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=f"cannot read config file {tmp_path}"):
        load(tmp_path)


# ------------------------------------------------------------ the MQTT password
def _with_password_file(path) -> Config:
    return parse(MINIMAL + f'[mqtt]\npassword_file = "{path}"\n')


def test_the_mqtt_password_is_read_from_the_password_file(tmp_path, monkeypatch):
    monkeypatch.delenv("RESTOBOX_MQTT_PASSWORD", raising=False)
    pw = tmp_path / "mqtt.password"
    pw.write_text("s3cret-pass\n", encoding="utf-8")
    assert _with_password_file(pw).mqtt_password() == "s3cret-pass"


def test_the_environment_variable_overrides_the_password_file(tmp_path, monkeypatch):
    pw = tmp_path / "mqtt.password"
    pw.write_text("from-file\n", encoding="utf-8")
    monkeypatch.setenv("RESTOBOX_MQTT_PASSWORD", "from-env")
    assert _with_password_file(pw).mqtt_password() == "from-env"


def test_the_environment_variable_is_used_even_when_the_file_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTOBOX_MQTT_PASSWORD", "from-env")
    assert _with_password_file(tmp_path / "missing").mqtt_password() == "from-env"


def test_without_file_or_environment_there_is_no_password(monkeypatch):
    monkeypatch.delenv("RESTOBOX_MQTT_PASSWORD", raising=False)
    assert parse(MINIMAL).mqtt_password() is None


def test_a_missing_password_file_is_a_config_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("RESTOBOX_MQTT_PASSWORD", raising=False)
    missing = tmp_path / "mqtt.password"
    with pytest.raises(ConfigError) as exc:
        _with_password_file(missing).mqtt_password()
    assert f"cannot read the MQTT password file {missing}" in str(exc.value)


def test_an_empty_password_file_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv("RESTOBOX_MQTT_PASSWORD", raising=False)
    pw = tmp_path / "mqtt.password"
    pw.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is empty"):
        _with_password_file(pw).mqtt_password()


def test_a_password_file_that_is_a_directory_is_a_config_error_naming_it(tmp_path, monkeypatch):
    # unlike a mode-000 file, this fails for root too
    monkeypatch.delenv("RESTOBOX_MQTT_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=f"cannot read the MQTT password file {tmp_path}"):
        _with_password_file(tmp_path).mqtt_password()
