"""MkDocs hooks for the documentation site (``mkdocs.yml``: ``hooks: [docs/hooks.py]``).

* The course notebooks live in ``notebooks/`` at the repository root, outside ``docs/``. They
  are added to the site as ``notebooks/<name>.ipynb`` (the same path as in the repository),
  before mkdocs-jupyter turns ``.ipynb`` files into pages, so nothing is copied or linked into
  ``docs/``.
* A notebook links the theory page as ``../docs/theory.md`` (right on GitHub and in
  JupyterLab). mkdocs-jupyter renders notebooks with nbconvert, which leaves links alone, so
  links of the form ``../docs/<page>.md`` are rewritten to the URL of that page on the site.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parent.parent
COURSE = "notebooks"
DOCS_LINK = re.compile(r'href="\.\./docs/([^"#]+\.md)(#[^"]*)?"')


@event_priority(100)  # run before mkdocs-jupyter's on_files
def on_files(files: Files, config) -> Files:
    # A real file whose source directory is the repository root (mkdocs-jupyter reads the
    # notebook from abs_src_path, which a File.generated(...) would not provide to it).
    for path in sorted((ROOT / COURSE).glob("*.ipynb")):
        files.append(
            File(
                f"{COURSE}/{path.name}",
                src_dir=str(ROOT),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


def on_page_content(html: str, page, config, files: Files) -> str:
    if not page.file.src_uri.startswith(f"{COURSE}/"):
        return html

    def repoint(match: re.Match) -> str:
        target = files.get_file_from_path(match.group(1))
        if target is None:  # not a page of the site: leave the link as it is
            return match.group(0)
        url = get_relative_url(target.url, page.url)
        return f'href="{url}{match.group(2) or ""}"'

    return DOCS_LINK.sub(repoint, html)
