"""Packaging: every dltk2 module imports, and every library it imports is in setup.cfg's install_requires."""

import ast
import configparser
import importlib
import importlib.metadata
import pkgutil
import re
import sys

import dltk2
from helpers import REPO


def _modules():
    return [info.name for info in pkgutil.walk_packages(dltk2.__path__, "dltk2.") if not info.name.endswith("__main__")]


def test_every_module_imports():
    for name in _modules():
        importlib.import_module(name)


def test_every_third_party_import_is_an_install_requirement():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    required = {re.split(r"[<>=!\[ ]", line.strip())[0].lower().replace("_", "-")
                for line in config["options"]["install_requires"].strip().splitlines() if line.strip()}
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for path in (REPO / "dltk2").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("dltk2", "__future__"):
                    continue
                # A module not installed here (tomli, under Python >= 3.11) is required by its own name.
                providers = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                if top == "keras":  # Keras 3 comes with TensorFlow
                    providers.add("tensorflow")
                if not providers & required:
                    missing.setdefault(top, []).append(str(path.relative_to(REPO)))
    assert not missing, f"imported but not in install_requires: {missing}"
