"""A real ``clickhouse-server`` on loopback for the analytics tests (Debian's package), in its own
directory, ports and password, stopped with the test."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from backend.src.core.redis_launcher import free_port

USERS = """<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default>
    <readonly><max_memory_usage>2000000000</max_memory_usage><readonly>2</readonly></readonly></profiles>
  <users><default><password>{password}</password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default>
    <reader><password>{password}-read</password><networks><ip>127.0.0.1</ip></networks>
    <profile>readonly</profile><quota>default</quota></reader></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows>
    <read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
"""
CONFIG = """<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog><console>0</console></logger>
  <http_port>{http}</http_port><tcp_port>{tcp}</tcp_port><listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/user_files/</user_files_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>104857600</mark_cache_size>
</yandex>
"""


class ClickHouseServer:
    def __init__(self, binary: str, directory: Path, password: str = "levi-test-secret") -> None:
        self.binary, self.dir, self.password = binary, directory, password
        self.http_port, self.tcp_port = free_port(), free_port()
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "users.xml").write_text(USERS.format(password=password))
        (directory / "config.xml").write_text(CONFIG.format(d=directory, http=self.http_port, tcp=self.tcp_port))
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "levibot") -> str:
        return f"http://default:{self.password}@127.0.0.1:{self.http_port}/?database={database}"

    def read_url(self, database: str = "levibot") -> str:
        """As ``reader``, whose profile is ``readonly=2`` (reads and session settings: what the API and bot use)."""
        return f"http://reader:{self.password}-read@127.0.0.1:{self.http_port}/?database={database}"

    def up(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.http_port}/ping", timeout=1).text.strip() == "Ok."
        except httpx.HTTPError:
            return False

    def start(self, timeout: float = 30.0) -> ClickHouseServer:
        self.proc = subprocess.Popen([self.binary, f"--config-file={self.dir / 'config.xml'}"],  # noqa: S603
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.up():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"clickhouse-server did not start: {(self.dir / 'error.log').read_text()[-500:]}")
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        """``kill -9``: the store is gone at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
