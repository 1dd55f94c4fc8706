"""``dltk2 node serve``: a C-STORE SCP that spools what it receives, runs the models, and sends the results.

One :class:`Node` holds the SCP (pynetdicom; one thread per association) and one worker thread:

1. An association from an AE title not in ``allowed_ae_titles`` is rejected (A-ASSOCIATE-RJ,
   "calling AE title not recognised") and logged.
2. Each C-STORE is checked (it decodes; it has SOP Instance, Series and Study UIDs, the first the
   one the request names), written to the spool durably (:mod:`dltk2.node.spool`) and recorded
   (:mod:`dltk2.node.state`), and only then answered Success (0x0000). A dataset that does not decode
   is refused with 0xC210 (cannot understand), one without its UIDs with 0xA900 (does not match its
   SOP class), a full disk with 0xA700 (out of resources); each with a log line, and the node goes
   on. A SOP Instance UID already stored is answered Success and not stored again.
3. The release of the association completes its series; a series whose association was aborted (or
   whose node was killed) completes ``quiet_period_s`` after its last instance, after a restart too.
4. The worker takes complete series one at a time, runs the model of every rule that matches
   (:mod:`dltk2.node.results`), and sends what they made to the destination (:mod:`dltk2.node.send`),
   retrying unsent results. Segmentations, reports and other non-image series are not processed.

The log names AE titles, addresses and UIDs only: never a patient's name or ID.
"""

from __future__ import annotations

import io
import logging
import ssl
import threading
import time
from collections import defaultdict
from pathlib import Path

import pydicom

from dltk2.errors import first_line
from dltk2.node.config import NodeConfig
from dltk2.node.results import ModelCache, write_results
from dltk2.node.send import send
from dltk2.node.spool import Spool, is_uid
from dltk2.node.state import DONE, FAILED, FINISHED, SKIPPED, NodeState, SeriesInfo, SeriesRow

LOG = logging.getLogger("dltk2.node")
SUCCESS, OUT_OF_RESOURCES, DOES_NOT_MATCH, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xA900, 0xC210
NOT_IMAGES = {"SEG", "SR", "PR", "KO", "RTSTRUCT", "REG", "DOC"}
SEND_RETRY_S = 5.0


def series_info(dataset: pydicom.Dataset) -> SeriesInfo:
    """The series attributes the rules read (their first 64 characters)."""
    return SeriesInfo(str(dataset.SeriesInstanceUID), str(dataset.StudyInstanceUID),
                      str(dataset.get("Modality", ""))[:16], str(dataset.get("BodyPartExamined", ""))[:64],
                      str(dataset.get("SeriesDescription", ""))[:64])


def server_tls_context(config: NodeConfig) -> ssl.SSLContext | None:
    """The SCP's TLS context; with a ``ca``, peers must present a certificate it signed."""
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(config.tls.certificate), str(config.tls.key))
    if config.tls.ca is not None:
        context.load_verify_locations(str(config.tls.ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class Node:
    """The node: spool, state, models, and (once :meth:`start` is called) the SCP and the worker."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.spool = Spool(config.spool)
        self.state = NodeState(config.state_database)
        self.models = ModelCache()
        self._received: dict[object, set[str]] = defaultdict(set)
        self._received_lock = threading.Lock()
        self._stop = threading.Event()
        self._next_send = 0.0
        self._server = None
        self._worker: threading.Thread | None = None

    # -- receiving ------------------------------------------------------------------------------
    def store(self, data: bytes, requested_uid: str, calling_ae: str, association: object = None) -> int:
        """Checks, spools and records one received instance (the File Format bytes); returns the status."""
        try:
            dataset = pydicom.dcmread(io.BytesIO(data))
            for element in dataset.iterall():  # values are converted lazily: a malformed one raises here
                element.value
            uids = [str(dataset.get(keyword, "")) for keyword in ("SOPInstanceUID", "SeriesInstanceUID",
                                                                  "StudyInstanceUID", "SOPClassUID")]
        except Exception as error:  # pydicom's many errors for malformed data: the sender's problem, refused
            LOG.warning("refused %s from %s: the dataset does not decode (%s: %s); status 0x%04X", requested_uid,
                        calling_ae, type(error).__name__, first_line(error), CANNOT_UNDERSTAND)
            return CANNOT_UNDERSTAND
        sop_uid, series_uid, study_uid, sop_class = uids
        if not all(is_uid(uid) for uid in uids) or sop_uid != requested_uid:
            LOG.warning("refused %s from %s: SOP Instance UID %r, Series %r, Study %r, SOP Class %r (a UID missing, "
                        "malformed or not the one requested); status 0x%04X", requested_uid, calling_ae, sop_uid,
                        series_uid, study_uid, sop_class, DOES_NOT_MATCH)
            return DOES_NOT_MATCH
        # Known already (or recorded by another association since): answered Success, kept once.
        new = not self.state.has_instance(sop_uid)
        if new:
            try:
                path = self.spool.store(series_uid, sop_uid, data)
                new = self.state.record_instance(sop_uid, sop_class, series_info(dataset), path, calling_ae)
            except OSError as error:
                LOG.error("could not spool %s from %s: %s; status 0x%04X", sop_uid, calling_ae, first_line(error),
                          OUT_OF_RESOURCES)
                return OUT_OF_RESOURCES
        if new:
            LOG.debug("stored %s (series %s) from %s", sop_uid, series_uid, calling_ae)
        else:
            LOG.info("duplicate %s (series %s) from %s: already stored, kept once", sop_uid, series_uid, calling_ae)
        self._remember(association, series_uid)
        return SUCCESS

    def recover(self) -> int:
        """Records spooled files a kill left without their row (after the rename, before the commit).

        Their sender had no Success, so it may send them again (then they are duplicates); if it does
        not, they are still instances of their series. Returns how many were recorded.
        """
        known = self.state.known_paths()
        recorded = 0
        for path in self.spool.instance_files():
            relative = str(path.relative_to(self.spool.root))
            if relative in known:
                continue
            try:
                dataset = pydicom.dcmread(path, stop_before_pixels=True)
                recorded += self.state.record_instance(str(dataset.SOPInstanceUID), str(dataset.SOPClassUID),
                                                       series_info(dataset), relative, "recovered")
            except Exception as error:  # a spooled file is whole (renamed after fsync); this would be a bug
                LOG.error("spooled %s cannot be recovered: %s", relative, first_line(error))
        return recorded

    def _remember(self, association: object, series_uid: str) -> None:
        if association is not None:
            with self._received_lock:
                self._received[association].add(series_uid)

    def _on_store(self, event) -> int:
        return self.store(event.encoded_dataset(), str(event.request.AffectedSOPInstanceUID),
                          event.assoc.requestor.ae_title, event.assoc)

    def _on_released(self, event) -> None:
        with self._received_lock:
            series = self._received.pop(event.assoc, set())
        self.state.complete(series)
        LOG.info("association from %s released: %d series complete", event.assoc.requestor.ae_title, len(series))

    def _on_aborted(self, event) -> None:
        with self._received_lock:
            series = self._received.pop(event.assoc, set())
        if series:
            LOG.info("association from %s ended without release: %d series complete after %.0f s of quiet",
                     event.assoc.requestor.ae_title, len(series), self.config.quiet_period_s)

    def _on_rejected(self, event) -> None:
        requestor = event.assoc.requestor
        LOG.warning("refused an association from AE %r at %s:%s: not an allowed calling AE title", requestor.ae_title,
                    requestor.address, requestor.port)

    # -- processing -----------------------------------------------------------------------------
    def process(self, row: SeriesRow) -> str:
        """Runs the rules' models on one claimed series; records and returns its final status."""
        from dltk2.io.dicom_series import read_series

        uid = row.series_instance_uid
        if row.modality.upper() in NOT_IMAGES:
            return self._finish(uid, SKIPPED, f"a {row.modality} series, not images")
        rules = [rule for rule in self.config.rules if rule.matches(row.modality, row.body_part, row.description)]
        if not rules:
            return self._finish(uid, SKIPPED, f"no rule reads modality {row.modality!r}, body part {row.body_part!r}")
        try:
            start = time.perf_counter()
            volume = read_series(self.spool.series_folder(uid))
            written = []
            for rule in rules:
                model = self.models.get(rule.model_path)
                for sop_uid, path in write_results(model, volume, self.spool.results_folder(uid)):
                    self.state.add_result(sop_uid, uid, model.config.application, str(path))
                    written.append(f"{model.config.application} {sop_uid}")
        except Exception as error:  # a bad series or model fails this series only; the node serves on
            return self._finish(uid, FAILED, f"{type(error).__name__}: {first_line(error)}")
        self._ingest(uid)
        self._next_send = 0.0
        return self._finish(uid, DONE, f"{len(written)} result(s) in {time.perf_counter() - start:.1f} s: "
                                       + ", ".join(written))

    def _finish(self, uid: str, status: str, detail: str) -> str:
        self.state.finish(uid, status, detail)
        (LOG.warning if status == FAILED else LOG.info)("series %s %s: %s", uid, status, detail)
        return status

    def _ingest(self, uid: str) -> None:
        if not self.config.ingest_database_url:
            return
        from dltk2.datasets.dicom_database import open_database
        from dltk2.datasets.dicom_ingest import ingest_directory

        try:
            report = ingest_directory(open_database(self.config.ingest_database_url),
                                      self.spool.series_folder(uid), progress=False)
        except Exception as error:  # the database is a by-product: its failure is logged, not fatal
            LOG.warning("series %s: not ingested into the body-part database: %s", uid, first_line(error))
            return
        LOG.info("series %s ingested into the body-part database: %d added, %d present, %d skipped", uid,
                 report.added, report.already_present, len(report.failed) + len(report.conflicts))

    def send_pending(self) -> int:
        """Sends every unsent result (one batch per series); returns how many arrived."""
        pending: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for sop_uid, series_uid, path in self.state.unsent_results():
            pending[series_uid].append((sop_uid, path))
        arrived = 0
        for series_uid, items in pending.items():
            answers = send([Path(path) for _, path in items], self.config.destination, self.config.ae_title,
                           self.config.tls)
            for (sop_uid, _), answer in zip(items, answers):
                self.state.sent(sop_uid, answer)
                if answer:
                    LOG.warning("result %s of series %s not sent: %s (retried)", sop_uid, series_uid, answer)
                else:
                    arrived += 1
                    LOG.info("result %s of series %s sent to %s", sop_uid, series_uid,
                             self.config.destination.describe())
        if arrived < sum(len(items) for items in pending.values()):
            self._next_send = time.monotonic() + SEND_RETRY_S
        return arrived

    def work_once(self) -> bool:
        """Processes one ready series, or sends what is pending; False when there was nothing to do."""
        row = self.state.claim_ready(self.config.quiet_period_s)
        if row is not None:
            self.process(row)
            return True
        if time.monotonic() >= self._next_send and self.state.unsent_results():
            self.send_pending()
            return True
        return False

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.work_once()
            except Exception:  # a bug: logged with its traceback; the worker goes on
                LOG.exception("worker error")
                busy = False
            if not busy:
                self._stop.wait(0.2)

    # -- running --------------------------------------------------------------------------------
    def start(self) -> None:
        """Starts the SCP (not blocking) and the worker."""
        from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification

        removed = self.spool.remove_temporaries()
        recovered = self.recover()
        interrupted = self.state.reset_interrupted()
        ae = AE(ae_title=self.config.ae_title)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.require_calling_aet = list(self.config.allowed_ae_titles)
        ae.maximum_associations = self.config.max_associations
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_RELEASED, self._on_released),
                    (evt.EVT_ABORTED, self._on_aborted), (evt.EVT_REJECTED, self._on_rejected)]
        self._server = ae.start_server((self.config.host, self.config.port), block=False, evt_handlers=handlers,
                                       ssl_context=server_tls_context(self.config))
        self._worker = threading.Thread(target=self._work, name="dltk2-node-worker", daemon=True)
        self._worker.start()
        waiting = sum(1 for row in self.state.series_rows() if row.status not in FINISHED)
        LOG.info("node %s listening on %s:%d%s; %d series waiting (%d interrupted), %d partial writes removed, "
                 "%d unrecorded instances recovered", self.config.ae_title, self.config.host, self.config.port,
                 " (TLS)" if self.config.tls else "", waiting, interrupted, removed, recovered)

    def stop(self) -> None:
        """Stops accepting, finishes the series being processed, and returns."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self._worker is not None:
            self._worker.join()
