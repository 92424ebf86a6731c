"""Starting `ctr-assets dev` as a user would, for the tests that need the whole stack."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class DevStack:
    process: subprocess.Popen
    url: str
    home: Path
    output: Path

    def log(self) -> str:
        return self.output.read_text(errors="replace")[-5000:]

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        response.raise_for_status()
        return response.json()["data"]

    def wait_until_answering(self, timeout_seconds: float = 300) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"ctr-assets dev exited:\n{self.log()}")
            try:
                if self.graphql("{ __typename }")["__typename"] == "Query":
                    return
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(1)
        raise AssertionError(f"the GraphQL endpoint never answered:\n{self.log()}")

    def interrupt(self, timeout_seconds: float = 90) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout_seconds)


def start_dev(home: Path, env_overrides: dict[str, str], unset: tuple[str, ...] = ()) -> DevStack:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DAGSTER_HOME", *unset}}
    env.update(CTR_HOME=str(home), **env_overrides)
    home.mkdir(parents=True, exist_ok=True)
    output = home.parent / f"dev-{port}.out"
    process = subprocess.Popen(
        [str(BIN / "ctr-assets"), "dev", "--port", str(port)],
        env=env,
        stdout=output.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    return DevStack(process, f"http://127.0.0.1:{port}", home, output)
