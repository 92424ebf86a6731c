"""Checks that the deployment files agree: each returns human-readable problems.

docker-compose.yml, the Dockerfile, dagster.yaml, workspace.yaml and .env.example are parsed
(no Docker engine needed); the tests in test_deploy_config.py run these checks on the real
files and on broken copies.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from ctr_assets.deploy import dagster_storage

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAGSTER_EXECUTABLES = frozenset({"dagster", "dagster-webserver", "dagster-daemon"})
EXPECTED_DAGSTER_SERVICES = {"user_code", "webserver", "daemon"}
ENV_FILE = ".env"  # the env file a service may read; .env.example documents it
LOCALHOST = frozenset({"127.0.0.1", "::1"})
# The workspace the compose services load (the root has none: `dagster dev` reads pyproject).
WORKSPACE = "docker/workspace.yaml"
URL_VARIABLES = ("DATABASE_URL", "DAGSTER_POSTGRES_URL")
STORAGE_SCHEME = "postgresql+psycopg2"
APPLICATION_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg2"})

Document = Mapping[str, Any]

# ---------------------------------------------------------------------------------------
# Reading the files


def parse_env_file(text: str) -> dict[str, str]:
    """`NAME=value` lines as docker compose reads an env file; comments and blanks skipped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise ValueError(f"line {number} is not NAME=value: {raw!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[name] = value
    return values


@dataclass(frozen=True)
class Deployment:
    compose: Document
    dagster_yaml: Document
    workspace: Document
    env_example: dict[str, str]
    dockerfile: str
    dockerignore: str
    gitignore: str


def read_deployment(root: Path = ROOT) -> Deployment:
    def text(name: str) -> str:
        return (root / name).read_text(encoding="utf-8")

    return Deployment(
        compose=yaml.safe_load(text("docker-compose.yml")),
        dagster_yaml=yaml.safe_load(text("dagster.yaml")),
        workspace=yaml.safe_load(text(WORKSPACE)),
        env_example=parse_env_file(text(".env.example")),
        dockerfile=text("Dockerfile"),
        dockerignore=text(".dockerignore"),
        gitignore=text(".gitignore"),
    )


# ---------------------------------------------------------------------------------------
# Compose semantics: interpolation, environments, commands, ports, volumes

_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """`${NAME}`, `${NAME:-default}`, `${NAME:?error}`, `$NAME`, `$$` as docker compose reads
    them, with `env` standing in for the .env file."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["bare"]
        op, arg, value = match["op"] or "", match["arg"] or "", env.get(name)
        if op in ("-", ":-"):
            use_default = value is None or (op == ":-" and value == "")
            return arg if use_default else value
        if op in ("+", ":+"):
            use_alternative = value is not None and (op == "+" or value != "")
            return arg if use_alternative else ""
        return value or ""

    return _REFERENCE.sub(substitute, text)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


def interpolated_variables(document: Any) -> dict[str, bool]:
    """Each NAME the document interpolates, and whether every use of it has a default."""
    found: dict[str, bool] = {}
    for text in _strings(document):
        for match in _REFERENCE.finditer(text):
            if match["escaped"]:
                continue
            has_default = (match["op"] or "").lstrip(":") in ("-", "+")
            name = match["braced"] or match["bare"]
            found[name] = found.get(name, True) and has_default
    return found


def dagster_env_variables(node: Any) -> set[str]:
    """Every NAME of an `{env: NAME}` anywhere in a Dagster config document, and the
    variable our storage class reads when its URL is not configured."""
    if isinstance(node, Mapping):
        if set(node) == {"env"} and isinstance(node["env"], str):
            return {node["env"]}
        if (
            node.get("module") == dagster_storage.__name__
            and node.get("class") == (dagster_storage.CtrDagsterStorage.__name__)
            and "postgres_url" not in (node.get("config") or {})
        ):
            return {dagster_storage.URL_VARIABLE}
        return set().union(*(dagster_env_variables(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(dagster_env_variables(item) for item in node))
    return set()


def env_files(service: Document) -> list[str]:
    entries = service.get("env_file") or []
    entries = [entries] if isinstance(entries, str | Mapping) else entries
    return [entry["path"] if isinstance(entry, Mapping) else str(entry) for entry in entries]


def environment_of(service: Document, env_example: Mapping[str, str]) -> dict[str, str]:
    """The environment a service's container gets, interpolated against .env.example; an
    `env_file: .env` contributes what .env.example defines."""
    values: dict[str, str] = {}
    for path in env_files(service):
        if posixpath.normpath(path) == ENV_FILE:
            values.update(env_example)
    declared = service.get("environment") or {}
    if isinstance(declared, list):
        pairs = (str(item).partition("=") for item in declared)
        declared = {name: (value if sep else None) for name, sep, value in pairs}
    for name, value in declared.items():
        if value is None:  # `- NAME` passes the variable through from .env
            values[name] = env_example.get(name, "")
        else:
            values[name] = interpolate(str(value), env_example)
    return values


def command_of(service: Document) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def healthcheck_command(service: Document) -> list[str]:
    test = (service.get("healthcheck") or {}).get("test") or []
    if isinstance(test, str):
        return shlex.split(test)
    if test[:1] == ["CMD"]:
        return [str(part) for part in test[1:]]
    if test[:1] == ["CMD-SHELL"]:
        return shlex.split(" ".join(str(part) for part in test[1:]))
    return []


def flag_value(command: list[str], *flags: str) -> str | None:
    for index, token in enumerate(command):
        name, sep, value = token.partition("=")
        if name in flags:
            return value if sep else (command[index + 1] if index + 1 < len(command) else None)
    return None


def words_and_flags(command: list[str]) -> tuple[list[str], list[str]]:
    """`dagster api grpc -h 0.0.0.0 -p 4000` -> (['dagster', 'api', 'grpc'], ['-h', '-p'])."""
    words: list[str] = []
    for token in command:
        if token.startswith("-"):
            break
        words.append(token)
    flags = [token.partition("=")[0] for token in command[len(words) :] if token.startswith("-")]
    return words, flags


def dagster_services(compose: Document) -> dict[str, Document]:
    """The services that run a Dagster command (and so read dagster.yaml)."""
    return {
        name: service
        for name, service in (compose.get("services") or {}).items()
        if command_of(service)[:1] and command_of(service)[0] in DAGSTER_EXECUTABLES
    }


def depends_on(service: Document) -> dict[str, str]:
    """Each dependency and its condition (compose's default is `service_started`)."""
    declared = service.get("depends_on") or {}
    if isinstance(declared, list):
        return dict.fromkeys(declared, "service_started")
    return {
        name: (spec or {}).get("condition", "service_started") for name, spec in declared.items()
    }


@dataclass(frozen=True)
class PublishedPort:
    spec: str
    host_ip: str | None
    published: str | None
    target: str


def published_ports(service: Document) -> list[PublishedPort]:
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, Mapping):
            published = entry.get("published")
            ports.append(
                PublishedPort(
                    str(dict(entry)),
                    entry.get("host_ip"),
                    None if published is None else str(published),
                    str(entry["target"]),
                )
            )
            continue
        spec = str(entry)
        rest, host_ip = spec.split("/", 1)[0], None
        if rest.startswith("["):
            host_ip, _, rest = rest[1:].partition("]:")
        parts = rest.split(":")
        if len(parts) == 3:
            host_ip, parts = parts[0], parts[1:]
        published = parts[0] if len(parts) == 2 else None
        ports.append(PublishedPort(spec, host_ip, published, parts[-1]))
    return ports


def volume_mounts(service: Document) -> dict[str, str]:
    """Mount target -> volume (or host path)."""
    mounts = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, Mapping):
            mounts[str(entry["target"])] = str(entry.get("source", ""))
        else:
            source, _, rest = str(entry).partition(":")
            mounts[rest.split(":", 1)[0]] = source
    return mounts


# ---------------------------------------------------------------------------------------
# The checks: compose, dagster.yaml, workspace.yaml, .env.example


def problems(
    compose: Document, dagster_yaml: Document, workspace: Document, env_example: Mapping[str, str]
) -> list[str]:
    """Everything on which docker-compose.yml disagrees with dagster.yaml, workspace.yaml and
    .env.example, or exposes what it must not; empty when they agree."""
    services: Mapping[str, Document] = compose.get("services") or {}
    return [
        *_interpolation_problems(compose, env_example),
        *dagster_environment_problems(compose, dagster_yaml, env_example),
        *_workspace_problems(services, workspace, env_example),
        *_port_problems(services),
        *_database_problems(services, env_example),
    ]


def _interpolation_problems(compose: Document, env_example: Mapping[str, str]) -> list[str]:
    found = []
    variables = interpolated_variables(compose)
    for name, has_default in sorted(variables.items()):
        if name not in env_example:
            found.append(
                f"docker-compose.yml interpolates ${{{name}}}, which .env.example does not define"
            )
        elif not has_default and not env_example[name]:
            found.append(
                f".env.example leaves {name} empty, but docker-compose.yml needs a value "
                "(no default): give it a placeholder"
            )
    for name in sorted(set(env_example) - set(variables)):
        found.append(f".env.example defines {name}, which docker-compose.yml never uses")
    return found


def dagster_environment_problems(
    compose: Document, dagster_yaml: Document, env_example: Mapping[str, str]
) -> list[str]:
    found = []
    needed = sorted(dagster_env_variables(dagster_yaml))
    services = dagster_services(compose)
    if not services:
        found.append("no service in docker-compose.yml runs a Dagster command")
    for name, service in services.items():
        found += [
            f"service {name} reads env_file {path}, which this check cannot see; "
            f"use {ENV_FILE} (documented by .env.example)"
            for path in env_files(service)
            if posixpath.normpath(path) != ENV_FILE
        ]
        environment = environment_of(service, env_example)
        for variable in needed:
            if variable not in environment:
                found.append(
                    f"service {name} runs Dagster but does not get {variable}, which "
                    f"dagster.yaml reads ({{env: {variable}}}): add it to its environment"
                )
            elif not environment[variable]:
                found.append(
                    f"service {name} gets {variable} (read by dagster.yaml) empty once "
                    "interpolated with .env.example"
                )
    return found


def _workspace_problems(
    services: Mapping[str, Document], workspace: Document, env_example: Mapping[str, str]
) -> list[str]:
    found = []
    servers = [
        entry["grpc_server"]
        for entry in workspace.get("load_from") or []
        if isinstance(entry, Mapping) and "grpc_server" in entry
    ]
    if not servers:
        found.append("workspace.yaml loads no grpc_server: nothing serves the code location")
    for server in servers:
        host, port = server.get("host"), str(server.get("port"))
        if host not in services:
            found.append(
                f"workspace.yaml loads the gRPC server at host {host!r}, which is not a "
                f"service of docker-compose.yml ({', '.join(services)})"
            )
            continue
        command = command_of(services[host])
        if command[:3] != ["dagster", "api", "grpc"]:
            found.append(f"service {host} does not run `dagster api grpc`: {command}")
            continue
        served = flag_value(command, "-p", "--port")
        if served != port:
            found.append(
                f"workspace.yaml expects the gRPC server of {host} on port {port}, "
                f"but its command serves on -p {served}"
            )
        bound = flag_value(command, "-h", "--host")
        if bound != "0.0.0.0":
            found.append(
                f"service {host} serves gRPC on {bound or 'localhost (the default)'}; other "
                "containers reach it only with -h 0.0.0.0"
            )
        health = healthcheck_command(services[host])
        if "grpc-health-check" in health and flag_value(health, "-p", "--port") != port:
            found.append(f"the healthcheck of {host} probes a port other than {port}")
        if not environment_of(services[host], env_example).get("DATABASE_URL"):
            found.append(
                f"service {host} serves the code location and executes its runs "
                "(DefaultRunLauncher), but gets no DATABASE_URL"
            )
    return found


def _port_problems(services: Mapping[str, Document]) -> list[str]:
    found = []
    for name, service in services.items():
        ports = published_ports(service)
        found += [
            f"service {name} publishes {port.spec} on every interface; bind it to "
            f'127.0.0.1 ("127.0.0.1:{port.published or port.target}:{port.target}")'
            for port in ports
            if port.host_ip not in LOCALHOST
        ]
        command = command_of(service)
        if command[:1] != ["dagster-webserver"]:
            continue
        listens = flag_value(command, "-p", "--port") or "3000"
        if flag_value(command, "-h", "--host") != "0.0.0.0":
            found.append(
                f"service {name} runs dagster-webserver without -h 0.0.0.0: "
                "its published port would lead nowhere"
            )
        if not ports:
            found.append(f"service {name} runs dagster-webserver but publishes no port")
        found += [
            f"service {name} publishes container port {port.target}, but dagster-webserver "
            f"listens on -p {listens}"
            for port in ports
            if port.target != listens
        ]
    return found


def _postgres_services(services: Mapping[str, Document]) -> dict[str, Document]:
    return {
        name: service
        for name, service in services.items()
        if str(service.get("image", "")).split(":")[0].rsplit("/", 1)[-1] == "postgres"
    }


def _database_problems(
    services: Mapping[str, Document], env_example: Mapping[str, str]
) -> list[str]:
    postgres = _postgres_services(services)
    if not postgres:
        return ["docker-compose.yml has no service running the postgres image"]
    found = []
    for name, service in postgres.items():
        healthcheck = service.get("healthcheck") or {}
        if healthcheck.get("disable") or healthcheck.get("test") in (None, [], "", ["NONE"]):
            found.append(
                f"service {name} (PostgreSQL) has no healthcheck: add one (pg_isready) so that "
                "the services using it can wait with condition: service_healthy"
            )
    for name, service in services.items():
        if name in postgres:
            continue
        environment = environment_of(service, env_example)
        urls = {v: environment[v] for v in URL_VARIABLES if environment.get(v)}
        hosts: set[str] = set()
        for variable, url in urls.items():
            found += _url_problems(name, variable, url, postgres, env_example, hosts)
        for host in sorted(hosts):
            condition = depends_on(service).get(host)
            if condition != "service_healthy":
                found.append(
                    f"service {name} uses the database but "
                    + ("does not depend on" if condition is None else f"waits for {condition} of")
                    + f" {host}: add depends_on: {host}: condition: service_healthy"
                )
    return found


def _url_problems(
    service: str,
    variable: str,
    url: str,
    postgres: Mapping[str, Document],
    env_example: Mapping[str, str],
    hosts: set[str],
) -> list[str]:
    where = f"service {service}: {variable}"
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError as error:
        return [f"{where} is not a URL ({error}); percent-encode the password"]
    found = []
    if variable == "DAGSTER_POSTGRES_URL" and parts.scheme != STORAGE_SCHEME:
        found.append(
            f"{where} has scheme {parts.scheme!r}; dagster-postgres needs {STORAGE_SCHEME}"
        )
    if variable == "DATABASE_URL" and parts.scheme not in APPLICATION_SCHEMES:
        found.append(f"{where} has scheme {parts.scheme!r}, not a PostgreSQL URL")
    if parts.hostname not in postgres:
        garbled = any(f"@{name}:" in url for name in postgres)
        found.append(
            f"{where} points at host {parts.hostname!r}, not at the postgres service "
            f"({', '.join(postgres)})"
            + (
                "; its user or password holds a URL-special character (@ / : ? #)"
                if garbled
                else ""
            )
        )
        return found
    hosts.add(parts.hostname)
    server = environment_of(postgres[parts.hostname], env_example)
    user = server.get("POSTGRES_USER") or "postgres"
    expected = {
        "user": user,
        "password": server.get("POSTGRES_PASSWORD", ""),
        "database": server.get("POSTGRES_DB") or user,
        "port": "5432",
    }
    actual = {
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/"),
        "port": str(port),
    }
    found += [
        f"{where} has a {field} other than the one the postgres service is set up with"
        for field in expected
        if actual[field] != expected[field]
    ]
    return found


# ---------------------------------------------------------------------------------------
# The checks: Dockerfile and .dockerignore against compose and the package


@dataclass(frozen=True)
class Image:
    base: str
    env: dict[str, str]
    user: str | None
    copies: list[tuple[str, str]]  # (source in the build context, path in the image)
    runs: list[str]

    def destinations(self, source: str) -> set[str]:
        return {target for copied, target in self.copies if copied == source}


def _expand(text: str, env: Mapping[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m[1], m[0]), text)


def read_dockerfile(text: str) -> Image:
    logical = re.sub(r"\\\n(?:\s*#[^\n]*\n)*", " ", text)
    base, env, user, copies, runs, workdir = "", {}, None, [], [], "/"
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM" and not base:
            base = next(token for token in args.split() if not token.startswith("--"))
        elif instruction == "ENV":
            tokens = shlex.split(args)
            if all("=" in token for token in tokens):
                env.update(token.split("=", 1) for token in tokens)
            else:
                env[tokens[0]] = " ".join(tokens[1:])
        elif instruction == "WORKDIR":
            workdir = posixpath.join(workdir, _expand(args.strip(), env))
        elif instruction == "USER":
            user = _expand(args.strip(), env).split(":")[0]
        elif instruction == "RUN":
            runs.append(args)
        elif instruction in ("COPY", "ADD"):
            tokens = [token for token in shlex.split(args) if not token.startswith("--")]
            sources, dest = tokens[:-1], posixpath.join(workdir, _expand(tokens[-1], env))
            into_directory = tokens[-1].endswith("/") or tokens[-1] == "." or len(sources) > 1
            for source in sources:
                name = posixpath.basename(source.rstrip("/"))
                target = posixpath.join(dest, name) if into_directory else dest
                copies.append((posixpath.normpath(source), posixpath.normpath(target)))
    return Image(base, env, user, copies, runs)


def ignored(path: str, patterns: str) -> bool:
    """Whether an ignore file (.dockerignore, or a root-level .gitignore entry) excludes
    `path`: the last matching pattern wins, `!` re-includes, a directory takes its contents."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:index]) for index in range(1, len(parts) + 1)]
    result = False
    for raw in patterns.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern = line.removeprefix("!").strip().strip("/")
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            result = not line.startswith("!")
    return result


def image_problems(
    dockerfile: str,
    dockerignore: str,
    compose: Document,
    env_example: Mapping[str, str],
    root: Path = ROOT,
) -> list[str]:
    """Everything on which the image disagrees with the services that run it."""
    image, found = read_dockerfile(dockerfile), []
    if not image.base.startswith("python:3.11-slim"):
        found.append(f"the image is built FROM {image.base}, not python:3.11-slim")
    if image.user in (None, "root", "0"):
        found.append("the image runs as root: add a USER")
    if not any(re.search(r"\bpip install\b.*\s\.(\s|$)", run) for run in image.runs):
        found.append("the image does not `pip install .` the package")
    package_dirs = {posixpath.dirname(path) for path in image.destinations("pyproject.toml")}
    if len(package_dirs) != 1:
        found.append("the image does not copy pyproject.toml (once) to build the package from")
    package_dir = next(iter(package_dirs), "?")
    for link in sorted((root / "ctr_assets").rglob("*")):
        target = link.resolve()
        outside = not target.is_relative_to(root / "ctr_assets")
        if link.is_symlink() and outside and target.is_relative_to(root):
            source = target.relative_to(root).as_posix()
            if posixpath.join(package_dir, source) not in image.destinations(source):
                found.append(
                    f"{link.relative_to(root)} links to {source}, which the image does not copy "
                    f"beside pyproject.toml ({package_dir}): the package would ship without it"
                )
    for source in sorted({source for source, _ in image.copies}):
        if ignored(source, dockerignore):
            found.append(f".dockerignore excludes {source}, which the Dockerfile copies")
    if not ignored(ENV_FILE, dockerignore):
        found.append(f".dockerignore lets {ENV_FILE} (secrets) into the build context")

    services = dagster_services(compose)
    images = {str(service.get("image")) for service in services.values()}
    if len(images) != 1:
        found.append(f"the Dagster services do not share one image: {sorted(images)}")
    for name, service in services.items():
        build = service.get("build")
        build = {"context": build} if isinstance(build, str) else (build or {})
        if (build.get("context"), build.get("dockerfile", "Dockerfile")) != (".", "Dockerfile"):
            found.append(f"service {name} is not built from ./Dockerfile")
        environment = {**image.env, **environment_of(service, env_example)}
        home = environment.get("DAGSTER_HOME")
        if not home or posixpath.join(home, "dagster.yaml") not in image.destinations(
            "dagster.yaml"
        ):
            found.append(f"service {name}: dagster.yaml is not in its DAGSTER_HOME ({home})")
        workspace = flag_value(command_of(service), "-w", "--workspace")
        if workspace and workspace not in image.destinations(WORKSPACE):
            found.append(f"service {name} loads -w {workspace}, where the image has no workspace")
        mounts = volume_mounts(service)
        command = command_of(service)
        runs_here = command[:3] == ["dagster", "api", "grpc"]  # DefaultRunLauncher
        if runs_here and environment.get("CTR_HOME") not in mounts:
            found.append(
                f"service {name} executes runs but mounts no volume at CTR_HOME "
                f"({environment.get('CTR_HOME')}): model files would die with the container"
            )
        storage = posixpath.join(home or "", "storage")
        if (runs_here or command[:1] == ["dagster-webserver"]) and storage not in mounts:
            found.append(
                f"service {name} mounts no volume at {storage} (asset outputs, compute logs)"
            )
    storage_volumes = {
        volume_mounts(service).get(posixpath.join(image.env.get("DAGSTER_HOME", ""), "storage"))
        for service in services.values()
    } - {None}
    if len(storage_volumes) > 1:
        found.append(f"the Dagster services mount different storage volumes: {storage_volumes}")
    return found
