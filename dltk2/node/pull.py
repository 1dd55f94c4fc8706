"""``dltk2 node pull``: query a PACS for series (QIDO-RS), retrieve the new ones (WADO-RS), infer, store back.

Each run asks the ``[pull] url`` server for the series of the rules' modalities (every series when a
rule names none), and for each one the node's state does not hold as finished: retrieves its
instances into the spool (as if C-STOREd, so a duplicate is stored once), processes it as the SCP's
worker would, and sends the results to the destination (which may be the same server's STOW-RS).
The state database remembers every series done, skipped or failed, so a second run retrieves nothing and
sends nothing, and a run killed half-way is finished by the next: a series retrieved in part is
retrieved again (what is already spooled is kept once), one whose results were not sent is sent.
Segmentations, reports and other non-image series (the node's own results among them) are recorded
as skipped without being retrieved.
"""

from __future__ import annotations

import dataclasses
import io
import logging

from dltk2.errors import ResourceError, first_line
from dltk2.node.server import NOT_IMAGES, Node
from dltk2.node.state import FINISHED, SKIPPED, SeriesInfo

LOG = logging.getLogger("dltk2.node")


@dataclasses.dataclass
class PullReport:
    """What one pull did: series found, already finished before, skipped, processed (by final status)."""

    found: int = 0
    already_finished: int = 0
    skipped: int = 0
    retrieved_instances: int = 0
    processed: dict[str, int] = dataclasses.field(default_factory=dict)
    sent: int = 0


def _value(attributes: dict, tag: str) -> str:
    values = attributes.get(tag, {}).get("Value", [])
    return str(values[0]) if values else ""


def pull(node: Node) -> PullReport:
    """One pull from ``node.config.pull_url`` (see the module docstring).

    Raises:
        ResourceError: The server does not answer the query; named, one line.
    """
    import requests
    from dicomweb_client.api import DICOMwebClient

    url = node.config.pull_url
    if not url:
        raise ResourceError(f"node {node.config.ae_title}: no [pull] url in its configuration")
    client = DICOMwebClient(url, session=requests.Session())
    client.set_http_retry_params(retry=False)  # its back-off retries any error for 31 s; the next pull retries
    modalities = sorted({m for rule in node.config.rules for m in rule.modality})
    if any(not rule.modality for rule in node.config.rules):
        modalities = []
    filters = [{"Modality": modality} for modality in modalities] or [{}]
    found: dict[str, dict] = {}
    try:
        for search in filters:
            for attributes in client.search_for_series(search_filters=search, fields=["BodyPartExamined"]):
                found[_value(attributes, "0020000E")] = attributes
    except Exception as error:  # requests' and dicomweb-client's errors: the server and one line
        raise ResourceError(f"{url}: QIDO-RS search failed ({type(error).__name__}: {first_line(error)})") from None
    report = PullReport(found=len(found))
    node.state.reset_interrupted()
    for series_uid, attributes in sorted(found.items()):
        info = SeriesInfo(series_uid, _value(attributes, "0020000D"), _value(attributes, "00080060"),
                          _value(attributes, "00180015"), _value(attributes, "0008103E"))
        status = node.state.status_of(series_uid)
        if status in FINISHED:  # a failed series is not retried by every pull: its log line says why
            report.already_finished += 1
            continue
        if info.modality.upper() in NOT_IMAGES or not any(
                rule.matches(info.modality, info.body_part, info.description) for rule in node.config.rules):
            node.state.add_series(info, SKIPPED, f"{info.modality} series: no rule reads it")
            report.skipped += 1
            LOG.info("series %s skipped without retrieving: %s, no rule reads it", series_uid, info.modality)
            continue
        try:
            datasets = client.retrieve_series(info.study_instance_uid, series_uid)
        except Exception as error:
            LOG.warning("series %s: WADO-RS retrieve from %s failed (%s: %s); the next pull tries again",
                        series_uid, url, type(error).__name__, first_line(error))
            continue
        for dataset in datasets:
            stream = io.BytesIO()
            dataset.save_as(stream, enforce_file_format=True)
            node.store(stream.getvalue(), str(dataset.SOPInstanceUID), "WADO-RS")
        report.retrieved_instances += len(datasets)
        node.state.complete({series_uid})
        LOG.info("series %s: %d instances retrieved from %s", series_uid, len(datasets), url)
    while (row := node.state.claim_ready(node.config.quiet_period_s)) is not None:
        final = node.process(row)
        report.processed[final] = report.processed.get(final, 0) + 1
    if node.state.unsent_results():
        report.sent = node.send_pending()
    return report
