"""Settings: one LEVIBOT_* surface, split into one model per concern."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.src.core.settings import Settings


def test_settings_sections_partition_one_flat_environment_surface(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.src.core import settings as mod

    sections = [mod.RedisSettings, mod.StorageSettings, mod.SupervisorSettings, mod.EngineSettings, mod.ApiSettings,
                mod.AlertSettings, mod.OutsideSettings, mod.AnalyticsSettings, mod.ExchangeSettings,
                mod.FeatureSettings, mod.RetrainSettings]
    owners: dict[str, list[str]] = {}
    for cls in sections:
        for name in cls.model_fields:
            owners.setdefault(name, []).append(cls.__name__)
    assert set(owners) == set(mod.Settings.model_fields), "every setting belongs to a section"
    assert {k: v for k, v in owners.items() if len(v) > 1} == {}, "and to one only"
    monkeypatch.setenv("LEVIBOT_MAX_RESTARTS", "7")
    monkeypatch.setenv("LEVIBOT_NAMESPACE", "x")
    monkeypatch.setenv("LEVIBOT_RISK_POLICY", "p.yaml")
    s = mod.Settings()
    assert s.supervisor.max_restarts == 7 and s.redis.namespace == "x:"
    engine = s.section(mod.EngineSettings)
    assert engine.risk_policy.is_absolute() and s.risk_policy == engine.risk_policy
    with pytest.raises(ValueError, match="heartbeat_timeout_s must exceed"):
        mod.Settings(heartbeat_timeout_s=0.3)


def test_telegram_ids_are_checked_and_listed(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, telegram_chat_id=" 555, -100777 ", telegram_admins="1001")  # type: ignore[arg-type]
    assert s.telegram_chats == [555, -100777] and s.telegram_admin_ids == [1001]
    assert Settings(data_dir=tmp_path).telegram_chats == []
    for bad in ("@desk", "", "12,abc"):
        with pytest.raises(ValidationError, match="expected numeric Telegram ids"):
            Settings(data_dir=tmp_path, telegram_chat_id=bad)  # type: ignore[arg-type]


def test_clickhouse_url_is_checked_without_echoing_it(tmp_path: Path) -> None:
    ok = Settings(data_dir=tmp_path, clickhouse_url="http://u:pw@127.0.0.1:8123/?database=levi_bot")  # type: ignore[arg-type]
    assert ok.clickhouse_url is not None and "pw" not in repr(ok)
    for bad, why in (("ftp://h/", "expected http"), ("http://h:8123/?database=x;DROP", "plain name")):
        with pytest.raises(ValidationError, match=why) as err:
            Settings(data_dir=tmp_path, clickhouse_url=bad)  # type: ignore[arg-type]
        assert "DROP" not in str(err.value.errors()[0]["msg"])


def test_list_settings_take_what_the_cli_takes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEVIBOT_RETRAIN_SYMBOLS", "BTCUSDT, ETHUSDT,SOLUSDT")
    monkeypatch.setenv("LEVIBOT_NEWS_FEEDS", '["http://127.0.0.1:1/a.xml", "http://127.0.0.1:1/b.xml"]')
    s = Settings(data_dir=tmp_path)  # type: ignore[call-arg]
    assert s.retrain_symbols == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert s.news_feeds == ["http://127.0.0.1:1/a.xml", "http://127.0.0.1:1/b.xml"]
    monkeypatch.setenv("LEVIBOT_RETRAIN_SYMBOLS", '["BTCUSDT"')
    with pytest.raises(ValidationError, match="retrain_symbols") as err:
        Settings(data_dir=tmp_path)  # type: ignore[call-arg]
    assert "A,B,C or a JSON list" in str(err.value)
