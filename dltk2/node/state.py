"""What the node has received, processed and sent: a small database (SQLite in the spool by default).

Three tables. ``instances``: one row per SOP Instance UID received (so a duplicate is stored once),
with its spool file. ``series``: one row per series, with its status::

    receiving -> complete -> processing -> done | skipped | failed
        (a release)  (the worker)

A series is *complete* when the association that brought it is released, or ``quiet_period_s``
after its last instance (an aborted association, a node killed and restarted). An instance arriving
for a finished series sends it back to ``receiving``: a series that grew is processed again (its
results have the same UIDs, so the PACS replaces them). ``results``: each output file and whether it
reached the destination; unsent ones are retried.

Every change is one transaction, so a node killed at any point leaves rows that agree with the
spool; :meth:`NodeState.reset_interrupted` puts a series that was being processed back in the queue.
The database holds UIDs, AE titles and paths, no patient's name or ID.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import sqlalchemy as sa

RECEIVING, COMPLETE, PROCESSING, DONE, SKIPPED, FAILED = "receiving", "complete", "processing", "done", "skipped", \
    "failed"
FINISHED = (DONE, SKIPPED, FAILED)

metadata = sa.MetaData()
instances = sa.Table(
    "instances", metadata,
    sa.Column("sop_instance_uid", sa.String(64), primary_key=True),
    sa.Column("series_instance_uid", sa.String(64), nullable=False, index=True),
    sa.Column("sop_class_uid", sa.String(64), nullable=False),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("calling_ae", sa.String(16), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False))
series_table = sa.Table(
    "series", metadata,
    sa.Column("series_instance_uid", sa.String(64), primary_key=True),
    sa.Column("study_instance_uid", sa.String(64), nullable=False),
    sa.Column("modality", sa.String(16), nullable=False),
    sa.Column("body_part", sa.String(64), nullable=False),
    sa.Column("description", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("instance_count", sa.Integer, nullable=False),
    sa.Column("last_received", sa.Float, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("detail", sa.String(512), nullable=False, default=""))
results = sa.Table(
    "results", metadata,
    sa.Column("sop_instance_uid", sa.String(64), primary_key=True),
    sa.Column("series_instance_uid", sa.String(64), nullable=False, index=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("path", sa.String(512), nullable=False),
    sa.Column("sent", sa.Boolean, nullable=False, default=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.String(512), nullable=False, default=""))


@dataclasses.dataclass(frozen=True)
class SeriesInfo:
    """What the rules look at, read from a series' first instance."""

    series_instance_uid: str
    study_instance_uid: str
    modality: str = ""
    body_part: str = ""
    description: str = ""


@dataclasses.dataclass(frozen=True)
class SeriesRow(SeriesInfo):
    status: str = RECEIVING
    instance_count: int = 0
    attempts: int = 0
    detail: str = ""


class NodeState:
    """The node's database (see the module docstring); safe to share between the SCP's threads."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, connect_args={"timeout": 60} if url.startswith("sqlite") else {})
        if url.startswith("sqlite"):
            @sa.event.listens_for(self.engine, "connect")
            def _wal(connection, _):  # readers do not wait for the writer; a commit is durable on return
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")
        metadata.create_all(self.engine)
        self._lock = threading.Lock()  # one writer at a time (SQLite would make the others wait anyway)

    def record_instance(self, sop_instance_uid: str, sop_class_uid: str, series: SeriesInfo, path: str,
                        calling_ae: str, now: float | None = None) -> bool:
        """Records a received instance (its file already durable in the spool); False for a duplicate."""
        now = time.time() if now is None else now
        with self._lock, self.engine.begin() as connection:
            known = connection.execute(sa.select(instances.c.path).where(
                instances.c.sop_instance_uid == sop_instance_uid)).first()
            if known is not None:
                return False
            connection.execute(instances.insert().values(
                sop_instance_uid=sop_instance_uid, series_instance_uid=series.series_instance_uid,
                sop_class_uid=sop_class_uid, path=path, calling_ae=calling_ae, received_at=now))
            updated = connection.execute(series_table.update().where(
                series_table.c.series_instance_uid == series.series_instance_uid).values(
                status=RECEIVING, instance_count=series_table.c.instance_count + 1, last_received=now,
                attempts=0, detail=""))
            if updated.rowcount == 0:
                connection.execute(series_table.insert().values(
                    **dataclasses.asdict(series), status=RECEIVING, instance_count=1, last_received=now, attempts=0,
                    detail=""))
        return True

    def has_instance(self, sop_instance_uid: str) -> bool:
        with self.engine.connect() as connection:
            return connection.execute(sa.select(instances.c.sop_instance_uid).where(
                instances.c.sop_instance_uid == sop_instance_uid)).first() is not None

    def instance_paths(self, series_instance_uid: str) -> list[str]:
        with self.engine.connect() as connection:
            return [row[0] for row in connection.execute(sa.select(instances.c.path).where(
                instances.c.series_instance_uid == series_instance_uid).order_by(instances.c.path))]

    def known_paths(self) -> set[str]:
        """The spool paths of every recorded instance."""
        with self.engine.connect() as connection:
            return {row[0] for row in connection.execute(sa.select(instances.c.path))}

    def instance_count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(instances)).scalar_one())

    def complete(self, series_uids: set[str]) -> None:
        """Marks series whose association was released as complete (those still receiving)."""
        if not series_uids:
            return
        with self._lock, self.engine.begin() as connection:
            connection.execute(series_table.update().where(
                series_table.c.series_instance_uid.in_(sorted(series_uids)),
                series_table.c.status == RECEIVING).values(status=COMPLETE))

    def claim_ready(self, quiet_period_s: float, now: float | None = None) -> SeriesRow | None:
        """The next series to process (complete, or quiet for ``quiet_period_s``), marked processing."""
        now = time.time() if now is None else now
        ready = sa.or_(series_table.c.status == COMPLETE, sa.and_(
            series_table.c.status == RECEIVING, series_table.c.last_received <= now - quiet_period_s))
        with self._lock, self.engine.begin() as connection:
            row = connection.execute(sa.select(series_table).where(ready).order_by(
                series_table.c.last_received).limit(1)).first()
            if row is None:
                return None
            connection.execute(series_table.update().where(
                series_table.c.series_instance_uid == row.series_instance_uid).values(
                status=PROCESSING, attempts=series_table.c.attempts + 1))
        values = dict(row._mapping)
        values.update(status=PROCESSING, attempts=row.attempts + 1)
        values.pop("last_received")
        return SeriesRow(**values)

    def add_series(self, series: SeriesInfo, status: str, detail: str = "") -> None:
        """Records a series the node did not receive by C-STORE (pull mode), with its status."""
        with self._lock, self.engine.begin() as connection:
            updated = connection.execute(series_table.update().where(
                series_table.c.series_instance_uid == series.series_instance_uid).values(status=status, detail=detail))
            if updated.rowcount == 0:
                connection.execute(series_table.insert().values(
                    **dataclasses.asdict(series), status=status, instance_count=0, last_received=time.time(),
                    attempts=0, detail=detail[:512]))

    def finish(self, series_instance_uid: str, status: str, detail: str = "") -> None:
        """Records how processing ended (unless an instance arrived meanwhile: then it is processed again)."""
        with self._lock, self.engine.begin() as connection:
            connection.execute(series_table.update().where(
                series_table.c.series_instance_uid == series_instance_uid,
                series_table.c.status == PROCESSING).values(status=status, detail=detail[:512]))

    def status_of(self, series_instance_uid: str) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(sa.select(series_table.c.status).where(
                series_table.c.series_instance_uid == series_instance_uid)).scalar_one_or_none()

    def series_rows(self) -> list[SeriesRow]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(series_table).order_by(series_table.c.last_received)).all()
        return [SeriesRow(**{key: value for key, value in row._mapping.items() if key != "last_received"})
                for row in rows]

    def reset_interrupted(self) -> int:
        """Series left ``processing`` by a node that was stopped: complete again. Returns how many."""
        with self._lock, self.engine.begin() as connection:
            return connection.execute(series_table.update().where(series_table.c.status == PROCESSING).values(
                status=COMPLETE)).rowcount

    def add_result(self, sop_instance_uid: str, series_instance_uid: str, model: str, path: str) -> None:
        """Records an output file to send (again unsent if it was written before: the series grew)."""
        with self._lock, self.engine.begin() as connection:
            connection.execute(results.delete().where(results.c.sop_instance_uid == sop_instance_uid))
            connection.execute(results.insert().values(
                sop_instance_uid=sop_instance_uid, series_instance_uid=series_instance_uid, model=model, path=path,
                sent=False, attempts=0, last_error=""))

    def unsent_results(self, max_attempts: int = 10) -> list[tuple[str, str, str]]:
        """``(sop_instance_uid, series_instance_uid, path)`` of results not yet at the destination."""
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(
                sa.select(results.c.sop_instance_uid, results.c.series_instance_uid, results.c.path).where(
                    ~results.c.sent, results.c.attempts < max_attempts).order_by(results.c.sop_instance_uid))]

    def sent(self, sop_instance_uid: str, error: str = "") -> None:
        """Records a send: ``error`` empty for success, else why it failed (it is retried)."""
        with self._lock, self.engine.begin() as connection:
            connection.execute(results.update().where(results.c.sop_instance_uid == sop_instance_uid).values(
                sent=not error, attempts=results.c.attempts + 1, last_error=error[:512]))

    def result_rows(self) -> list[dict]:
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(sa.select(results))]
