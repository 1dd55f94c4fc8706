"""The node's configuration file (TOML): who may send, where things go, which model reads which series.

Example ``node.toml``::

    ae_title = "DLTK2"
    port = 11112                       # host = "0.0.0.0" to listen beyond this machine
    allowed_ae_titles = ["CT01", "ORTHANC"]
    spool = "/var/spool/dltk2"         # received instances, the results, and state.db
    quiet_period_s = 10                # a series is complete on release, or this long after its last instance

    [destination]                      # where results go: C-STORE ...
    host = "pacs.example.org"
    port = 104
    ae_title = "PACS"
    # ... or DICOMweb STOW-RS:  url = "https://pacs.example.org/dicom-web"

    [pull]                             # dltk2 node pull: QIDO-RS / WADO-RS on this server
    url = "http://127.0.0.1:8042/dicom-web"

    [[rule]]                           # every rule a series matches runs
    model_path = "models/synapse"
    modality = ["CT"]
    body_part = ["ABDOMEN"]            # BodyPartExamined; empty: any
    series_description = "(?i)abd"     # a regular expression searched in SeriesDescription; empty: any

    [tls]                              # optional: the SCP (and a C-STORE destination) speak TLS
    certificate = "node.crt"
    key = "node.key"
    ca = "ca.crt"                      # given: peers must present a certificate it signed

Relative paths are read from the configuration file's folder. Every mistake is one line naming the
file and the key (:class:`dltk2.errors.DataError`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Any

from dltk2.errors import DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, as a package
    import tomli as tomllib


@dataclasses.dataclass(frozen=True)
class Rule:
    """Which series a model reads: all of the given conditions hold (an empty one holds for any series).

    Attributes:
        model_path: The model folder (its exported predictor and run configuration).
        modality: Modality values (upper case), e.g. ``["CT"]``.
        body_part: BodyPartExamined values (upper case).
        series_description: A regular expression searched in SeriesDescription.
    """

    model_path: Path
    modality: tuple[str, ...] = ()
    body_part: tuple[str, ...] = ()
    series_description: str = ""

    def matches(self, modality: str, body_part: str, description: str) -> bool:
        return ((not self.modality or modality.upper() in self.modality)
                and (not self.body_part or body_part.upper() in self.body_part)
                and (not self.series_description or re.search(self.series_description, description) is not None))


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where results are sent: a C-STORE SCP (``host``, ``port``, ``ae_title``) or a STOW-RS ``url``."""

    host: str = ""
    port: int = 0
    ae_title: str = ""
    url: str = ""

    @property
    def kind(self) -> str:
        return "stow-rs" if self.url else "c-store"

    def describe(self) -> str:
        return self.url if self.url else f"{self.ae_title}@{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class Tls:
    """PEM files: this node's certificate and key, and the authority its peers' certificates must be signed by."""

    certificate: Path
    key: Path
    ca: Path | None = None


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """A parsed ``node.toml`` (see the module docstring)."""

    ae_title: str
    spool: Path
    destination: Destination
    rules: tuple[Rule, ...]
    host: str = "127.0.0.1"
    port: int = 11112
    allowed_ae_titles: tuple[str, ...] = ()
    quiet_period_s: float = 10.0
    state_url: str = ""
    pull_url: str = ""
    ingest_database_url: str = ""
    tls: Tls | None = None
    max_associations: int = 16

    @property
    def state_database(self) -> str:
        """The SQLAlchemy URL of the node's state (default: SQLite ``<spool>/state.db``)."""
        return self.state_url or f"sqlite:///{self.spool / 'state.db'}"


def _table(values: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    table = values.get(key, {})
    if not isinstance(table, dict):
        raise DataError(f"{where}: [{key}] must be a table")
    return table


def _text(values: dict[str, Any], key: str, where: str, default: str = "") -> str:
    value = values.get(key, default)
    if not isinstance(value, str):
        raise DataError(f"{where}: {key} must be a string, got {value!r}")
    return value


def _number(values: dict[str, Any], key: str, where: str, default: float) -> float:
    value = values.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise DataError(f"{where}: {key} must be a number >= 0, got {value!r}")
    return value


def _names(values: dict[str, Any], key: str, where: str, upper: bool = True) -> tuple[str, ...]:
    value = values.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DataError(f"{where}: {key} must be a list of strings, got {value!r}")
    return tuple(item.strip().upper() if upper else item.strip() for item in value)


def _ae_title(value: str, where: str) -> str:
    # PS3.5: at most 16 characters of the default repertoire, no backslash or control characters.
    if not value.strip() or len(value) > 16 or not value.isascii() or "\\" in value or \
            any(ord(character) < 32 for character in value):
        raise DataError(f"{where}: {value!r} is not an AE title (1 to 16 ASCII characters, no backslash)")
    return value.strip()


def load_config(path: str | os.PathLike) -> NodeConfig:
    """Reads and checks a node configuration file.

    Raises:
        DataError: A missing or unparsable file, a missing or mistyped key, a rule's missing model
            folder, an invalid regular expression or AE title; named.
    """
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except OSError as error:
        raise DataError(f"{path}: cannot read the node configuration: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a TOML file: {error}") from None
    where, base = str(path), path.resolve().parent

    def resolve(text: str) -> Path:
        return (base / Path(text).expanduser()) if text else Path()

    if "spool" not in values:
        raise DataError(f"{where}: spool (the folder of received instances) is required")
    destination_values = _table(values, "destination", where)
    destination = Destination(host=_text(destination_values, "host", where, "127.0.0.1"),
                              port=int(_number(destination_values, "port", where, 0)),
                              ae_title=_text(destination_values, "ae_title", where),
                              url=_text(destination_values, "url", where).rstrip("/"))
    if destination_values and not destination.url:
        if not destination.port:
            raise DataError(f"{where}: [destination] needs url (STOW-RS) or port and ae_title (C-STORE)")
        _ae_title(destination.ae_title, f"{where}: [destination] ae_title")
    rules = []
    rule_tables = values.get("rule", [])
    if not isinstance(rule_tables, list) or not rule_tables:
        raise DataError(f"{where}: at least one [[rule]] (model_path and the series it reads) is required")
    for number, table in enumerate(rule_tables, start=1):
        rule_where = f"{where}: rule {number}"
        model_path = resolve(_text(table, "model_path", rule_where))
        if not table.get("model_path") or not model_path.is_dir():
            raise DataError(f"{rule_where}: model_path {str(model_path)!r} is not a model folder")
        description = _text(table, "series_description", rule_where)
        try:
            re.compile(description)
        except re.error as error:
            raise DataError(f"{rule_where}: series_description {description!r} is not a regular expression: "
                            f"{error}") from None
        rules.append(Rule(model_path, _names(table, "modality", rule_where), _names(table, "body_part", rule_where),
                          description))
    tls = None
    if "tls" in values:
        tls_values = _table(values, "tls", where)
        files = {key: resolve(_text(tls_values, key, f"{where}: [tls]")) for key in ("certificate", "key", "ca")}
        for key in ("certificate", "key") + (("ca",) if tls_values.get("ca") else ()):
            if not tls_values.get(key) or not files[key].is_file():
                raise DataError(f"{where}: [tls] {key} {str(files[key])!r} is not a file")
        tls = Tls(files["certificate"], files["key"], files["ca"] if tls_values.get("ca") else None)
    allowed = tuple(_ae_title(title, f"{where}: allowed_ae_titles") for title in _names(values, "allowed_ae_titles",
                                                                                        where, upper=False))
    if not allowed:  # an empty list would let any AE title store: say so rather than imply it
        raise DataError(f"{where}: allowed_ae_titles (the calling AE titles that may send to the node) is required")
    return NodeConfig(
        ae_title=_ae_title(_text(values, "ae_title", where, "DLTK2"), f"{where}: ae_title"),
        spool=resolve(_text(values, "spool", where)), destination=destination, rules=tuple(rules),
        host=_text(values, "host", where, "127.0.0.1"), port=int(_number(values, "port", where, 11112)),
        allowed_ae_titles=allowed, quiet_period_s=float(_number(values, "quiet_period_s", where, 10.0)),
        state_url=_text(values, "state_database", where),
        pull_url=_text(_table(values, "pull", where), "url", f"{where}: [pull]").rstrip("/"),
        ingest_database_url=_text(values, "ingest_database", where), tls=tls,
        max_associations=int(_number(values, "max_associations", where, 16)))
