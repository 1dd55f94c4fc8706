"""Sending results to the destination: C-STORE (pynetdicom, optionally TLS) or DICOMweb STOW-RS (dicomweb-client).

Each function sends a batch of files and returns, per file, an empty string for success or the
reason it failed, so the caller records each result's fate and retries only what did not arrive.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Sequence

import pydicom

from dltk2.errors import first_line
from dltk2.node.config import Destination, Tls


def client_tls_context(tls: Tls | None) -> ssl.SSLContext | None:
    """The SCU's TLS context: the node's certificate, the authority the peer's must be signed by."""
    if tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca) if tls.ca else None)
    context.check_hostname = False  # DICOM peers are configured by address and AE title, not host name
    context.load_cert_chain(str(tls.certificate), str(tls.key))
    return context


def send_c_store(paths: Sequence[Path], destination: Destination, calling_ae: str,
                 tls: Tls | None = None, timeout_s: float = 30.0) -> list[str]:
    """C-STOREs ``paths`` in one association; per file ``""`` or why it was not stored."""
    from pynetdicom import AE

    datasets = [pydicom.dcmread(path) for path in paths]
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    for sop_class, syntax in sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets}):
        ae.add_requested_context(sop_class, [syntax])
    context = client_tls_context(tls)
    peer = destination.describe()
    association = ae.associate(destination.host, destination.port, ae_title=destination.ae_title,
                               tls_args=(context, None) if context else None)
    if not association.is_established:
        reason = "association rejected" if association.is_rejected else "no association (not listening, or aborted)"
        return [f"{peer}: {reason}"] * len(datasets)
    answers = []
    try:
        for dataset in datasets:
            status = association.send_c_store(dataset)
            code = int(status.Status) if "Status" in status else None
            answers.append("" if code in (0x0000, 0xB000, 0xB006, 0xB007) else
                           f"{peer}: C-STORE status {'none (timed out)' if code is None else f'0x{code:04X}'}")
    finally:
        association.release()
    return answers


def send_stow_rs(paths: Sequence[Path], destination: Destination, timeout_s: float = 60.0) -> list[str]:
    """STOW-RS ``paths`` to ``destination.url`` in one request; per file ``""`` or why it was not stored."""
    import requests
    from dicomweb_client.api import DICOMwebClient

    datasets = [pydicom.dcmread(path) for path in paths]
    session = requests.Session()
    session.request = _with_timeout(session.request, timeout_s)
    client = DICOMwebClient(destination.url, session=session)
    client.set_http_retry_params(retry=False)  # its back-off retries any error for 31 s; the worker retries
    try:
        response = client.store_instances(datasets)
    except Exception as error:  # requests' and dicomweb-client's many errors: the peer and one line
        return [f"{destination.url}: STOW-RS failed ({type(error).__name__}: {first_line(error)})"] * len(datasets)
    failed = {str(item.ReferencedSOPInstanceUID): int(item.get("FailureReason", 0))
              for item in response.get("FailedSOPSequence", [])}
    return [f"{destination.url}: STOW-RS failure reason 0x{failed[str(ds.SOPInstanceUID)]:04X}"
            if str(ds.SOPInstanceUID) in failed else "" for ds in datasets]


def _with_timeout(request, timeout_s: float):
    def timed(*args, **kwargs):
        kwargs.setdefault("timeout", timeout_s)
        return request(*args, **kwargs)
    return timed


def send(paths: Sequence[Path], destination: Destination, calling_ae: str, tls: Tls | None = None) -> list[str]:
    """Sends to the destination by its kind (see the module docstring)."""
    if destination.kind == "stow-rs":
        return send_stow_rs(paths, destination)
    return send_c_store(paths, destination, calling_ae, tls)
