"""``dltk2 node serve|pull --config node.toml``: the DICOM node's command line.

``serve`` runs the SCP until SIGINT or SIGTERM (it finishes the series in hand, then exits 0);
``pull`` runs one pull and prints what it did. Log lines go to stderr (and ``--log_file``), with UIDs
and AE titles only. A bad configuration, or a port already taken, is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from dltk2.errors import USER_ERRORS, ResourceError, first_line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dltk2 node", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("serve", "pull"), help="serve: the C-STORE SCP; pull: one QIDO/WADO pull")
    parser.add_argument("--config", required=True, help="The node's TOML configuration (see dltk2.node.config).")
    parser.add_argument("--log_file", default=None, help="Also append the log here.")
    parser.add_argument("--verbose", action="store_true", help="Log every instance received.")
    return parser


def _configure_logging(log_file: str | None, verbose: bool) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("pynetdicom", "highdicom", "dicomweb_client"):  # a line per association event, per module copied
        logging.getLogger(chatty).setLevel(logging.WARNING)


def serve(node) -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    node.start()
    stop.wait()
    logging.getLogger("dltk2.node").info("stopping")
    node.stop()


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    _configure_logging(arguments.log_file, arguments.verbose)
    from dltk2.node.config import load_config
    from dltk2.node.server import Node

    try:
        node = Node(load_config(arguments.config))
        if arguments.command == "serve":
            try:
                serve(node)
            except OSError as error:  # the port is taken, or not ours to bind
                raise ResourceError(f"{node.config.host}:{node.config.port}: cannot listen: "
                                    f"{error.strerror or error}") from None
        else:
            from dltk2.node.pull import pull

            report = pull(node)
            processed = ", ".join(f"{count} {status}" for status, count in sorted(report.processed.items()))
            print(f"found={report.found}; already finished={report.already_finished}; skipped={report.skipped}; "
                  f"retrieved instances={report.retrieved_instances}; processed={processed or 0}; sent={report.sent}",
                  flush=True)
    except USER_ERRORS as error:
        sys.stderr.write(f"error: {first_line(error)}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
