"""``dltk2 node``: help and configuration errors at once, without TensorFlow."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO


def test_the_launcher_lists_the_node_and_its_help_needs_no_tensorflow(tmp_path):
    listed = subprocess.run([sys.executable, "-m", "dltk2", "--help"], capture_output=True, text=True, cwd=REPO)
    assert "node" in listed.stdout and "serve (C-STORE SCP) or pull" in listed.stdout
    code = ("import sys, dltk2.launcher as launcher\n"
            "try:\n    launcher.main(['node', '--help'])\nexcept SystemExit as exit:\n    assert exit.code == 0\n"
            "status = launcher.main(['node', 'serve', '--config', sys.argv[1]])\n"
            "print('STATUS', status, 'TENSORFLOW', 'tensorflow' in sys.modules)")
    bad = tmp_path / "node.toml"
    bad.write_text('spool = "spool"\n')
    result = subprocess.run([sys.executable, "-c", code, str(bad)], capture_output=True, text=True, cwd=REPO,
                            timeout=120)
    assert "serve: the C-STORE SCP" in result.stdout and "--config" in result.stdout
    assert "STATUS 2 TENSORFLOW False" in result.stdout
    assert f"error: {bad}: at least one [[rule]]" in result.stderr


def test_a_port_in_use_is_one_line(tmp_path):
    import socket

    from pacs import write_node_config

    (tmp_path / "model").mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_node_config(tmp_path, tmp_path / "model", 'url = "http://127.0.0.1:9"', port=port)
        result = subprocess.run([sys.executable, "-m", "dltk2.node", "serve", "--config", str(config)],
                                capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert f"error: 127.0.0.1:{port}: cannot listen: Address already in use" in result.stderr
