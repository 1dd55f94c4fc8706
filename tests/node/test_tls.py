"""The node's SCP over TLS: a peer with a certificate the configured authority signed stores; others cannot."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import pydicom
import pytest
from pacs import NODE_AE, SENDER_AE, write_node_config

from dltk2.node.config import load_config
from dltk2.node.server import Node

OPENSSL = shutil.which("openssl")


def make_certificates(folder):
    """A throwaway authority, and a certificate it signed for the node and for the sender."""
    def run(*arguments):
        subprocess.run([OPENSSL, *arguments], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=dltk2 test authority")
    for name in ("node", "sender"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
            f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            f"{name}.crt", "-days", "2")


def test_tls_peers_need_a_certificate_of_the_authority(tmp_path, ct_series, segmentation_model):
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    if OPENSSL is None:
        pytest.skip("openssl is not installed: no certificates to test TLS with")
    make_certificates(tmp_path)
    config_path = write_node_config(tmp_path, segmentation_model, 'url = "http://127.0.0.1:9/dicom-web"')
    with open(config_path, "a") as config:
        config.write('\n[tls]\ncertificate = "node.crt"\nkey = "node.key"\nca = "ca.crt"\n')
    node = Node(load_config(config_path))
    node.start()
    try:
        sender = AE(ae_title=SENDER_AE)
        sender.add_requested_context(CTImageStorage, pydicom.uid.ExplicitVRLittleEndian)
        dataset = pydicom.dcmread(next(ct_series.iterdir()))

        def context(with_certificate: bool) -> ssl.SSLContext:
            client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tmp_path / "ca.crt"))
            client.check_hostname = False
            if with_certificate:
                client.load_cert_chain(str(tmp_path / "sender.crt"), str(tmp_path / "sender.key"))
            return client

        plain = sender.associate("127.0.0.1", node.config.port, ae_title=NODE_AE)
        assert not plain.is_established
        anonymous = sender.associate("127.0.0.1", node.config.port, ae_title=NODE_AE, tls_args=(context(False), None))
        assert not anonymous.is_established
        association = sender.associate("127.0.0.1", node.config.port, ae_title=NODE_AE, tls_args=(context(True), None))
        assert association.is_established
        assert association.send_c_store(dataset).Status == 0x0000
        association.release()
        assert node.state.has_instance(str(dataset.SOPInstanceUID)) and node.state.instance_count() == 1
    finally:
        node.stop()
