"""One self-contained HTML page per deploy: what was run, the numbers, the pictures.

A radiologist or a reviewer opens one file, on any machine, with no server and nothing beside it:
the pictures are embedded as data URIs, the tables are plain HTML, the run's configuration is shown
as the model folder holds it. Written atomically, like every other output.

Example::

    report = HtmlReport("Synapse multi-organ segmentation: deploy")
    report.add_table(summary, "Per organ")
    report.add_image(output_dir / "dice_boxplot.png", "Dice over cases")
    report.add_json(run_config.to_dict(), "Run configuration")
    report.write(output_dir / "report.html")
"""

from __future__ import annotations

import base64
import datetime
import html
import json
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from dltk2.io.atomic import write_bytes_atomically

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; } figcaption { font-size: 0.85em; color: #555; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.meta { color: #666; font-size: 0.85em; }
"""


class HtmlReport:
    """Sections added in order, written as one HTML file.

    Args:
        title: The page's title and first heading.
        subtitle: A line under it (e.g. the model folder and the data).
    """

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.parts: list[str] = []
        created = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        self.parts.append(f"<h1>{html.escape(title)}</h1>")
        self.parts.append(f'<p class="meta">{html.escape(subtitle)}{" &middot; " if subtitle else ""}'
                          f"written {html.escape(created)}</p>")

    def add_heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def add_text(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def add_table(self, table: pd.DataFrame, heading: str | None = None, float_format: str = "{:.4f}",
                  max_rows: int = 500) -> None:
        """A table (at most ``max_rows`` rows shown; the count of the rest said)."""
        if heading:
            self.add_heading(heading)
        shown = table.head(max_rows)
        self.parts.append(shown.to_html(index=False, border=0, na_rep="",
                                        float_format=lambda value: float_format.format(value)))
        if len(table) > max_rows:
            self.add_text(f"... and {len(table) - max_rows} more rows (see the CSV).")

    def add_image(self, path: str | Path, caption: str = "") -> None:
        """A PNG embedded in the page (a missing file is said, not fatal: the report shows what exists)."""
        path = Path(path)
        if not path.is_file():
            self.parts.append(f"<p>({html.escape(path.name)} was not written)</p>")
            return
        data = base64.b64encode(path.read_bytes()).decode()
        self.parts.append(f'<figure><img alt="{html.escape(caption or path.name)}" src="data:image/png;base64,{data}">'
                          f"<figcaption>{html.escape(caption or path.name)}</figcaption></figure>")

    def add_json(self, value: Mapping[str, Any], heading: str | None = None) -> None:
        if heading:
            self.add_heading(heading)
        self.parts.append(f"<pre>{html.escape(json.dumps(value, indent=2, default=str))}</pre>")

    def to_html(self) -> str:
        body = "\n".join(self.parts)
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}'
                f"</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")

    def write(self, path: str | Path) -> Path:
        """Writes the page atomically; returns its path."""
        return write_bytes_atomically(path, self.to_html().encode())


def add_run_configuration(report: HtmlReport, model_path: str | Path) -> None:
    """The model folder's run configuration (as written by train.py), when it has one."""
    from dltk2.errors import DataError
    from dltk2.model_folder import ModelFolder

    folder = ModelFolder(model_path)
    try:
        config = folder.read_config()
    except (FileNotFoundError, DataError) as error:  # a report shows what it can, and says what it cannot
        report.add_heading("Run configuration")
        report.add_text(f"{folder.run_config_file}: {error}")
        return
    report.add_json(config.to_dict(), f"Run configuration ({folder.run_config_file})")
