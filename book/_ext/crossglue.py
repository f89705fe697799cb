"""Numbered figures glued from another notebook of the book.

myst-nb 1.4 can paste a glued image from another document only through the bare ``{glue}``
directive (no caption, no label, no number), and the image it points to is only written
when the source notebook displays it. This extension adds one directive::

    :::{glue-figure} /experiments/score_fields.ipynb::f3_mixture_score
    :name: fig-f3
    :width: 80%
    Caption paragraph (optional; further paragraphs become the legend).
    :::

It builds a normal ``figure`` node (so ``numfig`` numbers it and ``{numref}`` resolves) that
holds a placeholder. After all documents are read, a post-transform looks the key up in the
glue cache myst-nb writes for the source notebook (``<docname>.glue.json``), writes the image
into the builder's image folder and replaces the placeholder by an ``image`` node. If the key
holds no image, or the notebook or key is missing, that is a warning of type ``glue.missing``
(so a strict build fails). ``ssm_lib.experiment.Experiment.save_figure`` glues each figure as
the bytes of its PNG file, whatever the matplotlib backend.
"""

from __future__ import annotations

import hashlib
import json
import os
from binascii import a2b_base64
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

LOGGER = logging.getLogger(__name__)

IMAGE_MIMES = {"image/png": ".png", "image/jpeg": ".jpeg", "image/svg+xml": ".svg"}


class pending_glue_figure(nodes.General, nodes.Element):  # noqa: N801 - docutils node naming
    """Placeholder for an image glued in another document."""


def _skip(self, node):  # writers never see the node, but be safe
    raise nodes.SkipNode


class GlueFigureDirective(SphinxDirective):
    required_arguments = 1
    final_argument_whitespace = False
    has_content = True
    option_spec = {
        "name": directives.unchanged,
        "width": directives.unchanged,
        "alt": directives.unchanged,
        "figclass": directives.class_option,
        "align": lambda arg: directives.choice(arg, ("left", "center", "right")),
    }

    def run(self) -> list[nodes.Node]:
        target = self.arguments[0]
        doc, sep, key = target.partition("::")
        if not sep or not doc or not key:
            raise self.error(f"glue-figure: expected '<docpath>::<key>', got {target!r}")
        _, filepath = self.env.relfn2path(doc, self.env.docname)
        refdoc = self.env.path2doc(filepath)
        if refdoc is None:
            raise self.error(f"glue-figure: {doc!r} is not a document path (give its suffix)")
        placeholder = pending_glue_figure(refdoc=refdoc, key=key,
                                          width=self.options.get("width"),
                                          alt=self.options.get("alt", key))
        self.set_source_info(placeholder)
        figure = nodes.figure("", placeholder)
        self.set_source_info(figure)
        figure["classes"] += ["glue-figure"] + self.options.get("figclass", [])
        if "align" in self.options:
            figure["align"] = self.options["align"]
        self.add_name(figure)
        if self.content:
            holder = nodes.Element()
            self.state.nested_parse(self.content, self.content_offset, holder)
            first = holder[0]
            if isinstance(first, nodes.paragraph):
                caption = nodes.caption(first.rawsource, "", *first.children)
                caption.source, caption.line = first.source, first.line
                figure += caption
            if len(holder) > 1:
                figure += nodes.legend("", *holder[1:])
        return [figure]


def _read_cache(folder: str, docname: str) -> dict[str, Any]:
    path = Path(folder).joinpath(*docname.split("/")[:-1]) / f"{docname.split('/')[-1]}.glue.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


class ResolveGlueFigures(SphinxPostTransform):
    default_priority = 4

    def run(self, **kwargs: Any) -> None:
        folder = self.env.mystnb_config.output_folder  # type: ignore[attr-defined]
        for node in list(self.document.findall(pending_glue_figure)):
            data = _read_cache(folder, node["refdoc"]).get(node["key"])
            mime = None if data is None else next((m for m in IMAGE_MIMES if m in data["data"]), None)
            if mime is None:
                problem = ("not found in the glue data of" if data is None
                           else f"holds no image ({sorted(data['data'])}) in")
                LOGGER.warning(f"glue-figure: key {node['key']!r} {problem} {node['refdoc']!r} "
                               "(has that notebook been executed?)",
                               type="glue", subtype="missing", location=node)
                node.parent.remove(node)
                continue
            raw = data["data"][mime]
            blob = raw.encode("utf8") if mime == "image/svg+xml" else a2b_base64(raw)
            filename = hashlib.sha256(blob).hexdigest() + IMAGE_MIMES[mime]
            outdir = Path(self.app.builder.outdir)
            image_dir = outdir / getattr(self.app.builder, "imagedir", "_images")
            image_dir.mkdir(parents=True, exist_ok=True)
            path = image_dir / filename
            if not path.exists():
                path.write_bytes(blob)
            page_dir = (outdir / self.env.docname).parent
            uri = os.path.relpath(path, page_dir).replace(os.sep, "/")
            image = nodes.image(uri=uri, alt=node["alt"])
            image["candidates"] = {"*": uri}
            if node.get("width"):
                image["width"] = node["width"]
            image.source, image.line = node.source, node.line
            node.replace_self(image)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_node(pending_glue_figure, html=(_skip, None), latex=(_skip, None),
                 text=(_skip, None))
    app.add_directive("glue-figure", GlueFigureDirective)
    app.add_post_transform(ResolveGlueFigures)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
