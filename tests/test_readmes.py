"""Every command line in the READMEs names a script that exists and flags that script defines.

A README's blocks are what users paste. Each ``python applications/...`` or ``python data_scripts/...``
line (continuations joined) is checked against the script's own ``--help``/``--helpfull``, and each
``--flagfile`` against the flags its file sets, so a renamed flag or a moved preset fails here.
"""

import re
import subprocess
import sys
from functools import lru_cache

import pytest

from helpers import REPO

pytestmark = pytest.mark.slow  # one fresh process per script

READMES = sorted([REPO / "README.md", *(REPO / "applications").glob("*/README.md")])
SCRIPTS = [REPO / "scripts" / "main_job.sh"]  # the README's first command runs it
COMMAND = re.compile(r"(?:^|\s)(?:python3?|\S*/python|\"\$PYTHON\")\s+(?:-u\s+)?((?:applications|data_scripts)/[\w/]+\.py)"
                     r"(.*)")


def commands(readme):
    """(script, rest of the line) of each command in the README's code blocks (a shell script: all of it)."""
    text = readme.read_text()
    blocks = [text] if readme.suffix == ".sh" else re.findall(r"```[^\n]*\n(.*?)```", text, re.DOTALL)
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            match = COMMAND.search(line)
            if match:
                yield match.group(1), match.group(2)


@lru_cache(maxsize=None)
def defined_flags(script: str) -> frozenset[str]:
    help_flag = "--helpfull" if script.startswith("data_scripts/") else "--help"
    shown = subprocess.run([sys.executable, str(REPO / script), help_flag], capture_output=True, text=True,
                           cwd=REPO, timeout=120).stdout
    names = set(re.findall(r"--(?:\[no\])?(\w+):", shown)) | set(re.findall(r"^\s+-(\w),--", shown, re.MULTILINE))
    booleans = set(re.findall(r"--\[no\](\w+):", shown))
    return frozenset(names | {f"no{name}" for name in booleans})


def used_flags(arguments: str) -> list[str]:
    return [flag.lstrip("-").split("=")[0] for flag in re.findall(r"(?<![\w/.-])--?[A-Za-z]\w*(?:=\S*)?", arguments)]


def flagfile_flags(path):
    lines = [line.strip() for line in (REPO / path).read_text().splitlines()]
    return [line.lstrip("-").split("=")[0] for line in lines if line.startswith("--")]


CASES = [(readme.relative_to(REPO), script, arguments) for readme in READMES + SCRIPTS
         for script, arguments in commands(readme)]


def test_every_application_readme_and_the_main_job_have_commands():
    assert len(CASES) > 20 and {str(readme) for readme, _, _ in CASES} >= {
        "scripts/main_job.sh", *(str(p.relative_to(REPO)) for p in (REPO / "applications").glob("*/README.md"))}


@pytest.mark.parametrize("readme, script, arguments", CASES, ids=[f"{r}:{s}" for r, s, _ in CASES])
def test_each_command_names_a_script_and_its_flags(readme, script, arguments):
    assert (REPO / script).is_file(), f"{readme}: {script} does not exist"
    defined = defined_flags(script)
    unknown = [flag for flag in used_flags(arguments) if flag not in defined and flag not in ("flagfile", "help")]
    assert not unknown, f"{readme}: {script} defines no {unknown}"
    for flagfile in re.findall(r"--flagfile[= ](\S+)", arguments):
        assert (REPO / flagfile).is_file(), f"{readme}: {flagfile} does not exist"
        unknown = [flag for flag in flagfile_flags(flagfile) if flag not in defined]
        assert not unknown, f"{flagfile}: {script} defines no {unknown}"
