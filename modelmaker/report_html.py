"""``report.html``: the run's ``report.md`` as one self-contained page a browser opens without a network.

The markdown is converted with markdown-it-py (installed with rich), raw HTML in it shown as text, so a run name
or an error message holding ``<script>`` stays text. Images of PNG files in the run folder become base64 data
URIs; links to WAV files (the listening files) become ``<audio controls>`` players with the audio inline, up to
``AUDIO_EMBED_LIMIT`` bytes in all, the rest stay links to the file beside the report, saying so.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.token import Token

# A validation block of float WAVs is a few MB; past this the page gets slow to open, so the rest is linked.
AUDIO_EMBED_LIMIT = 10 * 1024 * 1024

# Nothing may load from outside the page: a data-URI-only policy also stops any script that slipped through.
_CSP = "default-src 'none'; img-src data:; media-src data:; style-src 'unsafe-inline'"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1b1f24; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; vertical-align: top; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; font-size: .88rem; }
pre { background: #f6f8fa; padding: .75rem; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #d0d7de; }
span.audio { display: block; margin: .3rem 0; }
span.audio .caption { display: block; font-size: .9rem; }
audio { width: 28rem; max-width: 100%; }
strong { color: #0b3d91; }
"""


def _local_file(run_dir: Path | None, ref: str) -> Path | None:
    """The run-folder file a relative link names, or None (absolute, remote, missing, or outside the folder)."""
    if run_dir is None or not ref or "://" in ref or ref.startswith(("/", "data:", "#")):
        return None
    root = run_dir.resolve()
    path = (root / unquote(ref)).resolve()
    return path if path.is_file() and path.is_relative_to(root) else None


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _audio_player(src: str, caption: str) -> str:
    # spans, not a figure: the player may sit inside a paragraph, where only phrasing content is valid
    return (f'<span class="audio"><span class="caption">{html.escape(caption)}</span>'
            f'<audio controls preload="metadata" src="{html.escape(src)}"></audio></span>')


class _Embedder:
    """Rewrites the parsed markdown in place: PNG images inline, WAV links as players (within the audio budget)."""

    def __init__(self, run_dir: Path | None, audio_limit: int) -> None:
        self.run_dir, self.audio_left = run_dir, audio_limit

    def rewrite(self, tokens: list[Token]) -> None:
        for tok in tokens:
            if tok.type == "inline" and tok.children:
                tok.children = self._inline(tok.children)

    def _inline(self, children: list[Token]) -> list[Token]:
        out: list[Token] = []
        i = 0
        while i < len(children):
            tok = children[i]
            if tok.type == "image":
                path = _local_file(self.run_dir, str(tok.attrs.get("src", "")))
                if path is not None and path.suffix.lower() == ".png":
                    tok.attrs["src"] = _data_uri(path, "image/png")
            elif tok.type == "link_open":
                close = next((j for j in range(i + 1, len(children)) if children[j].type == "link_close"), None)
                path = _local_file(self.run_dir, str(tok.attrs.get("href", "")))
                if close is not None and path is not None and path.suffix.lower() == ".wav":
                    caption = "".join(c.content for c in children[i + 1:close])
                    out += self._audio(path, caption, children[i:close + 1])
                    i = close + 1
                    continue
            out.append(tok)
            i += 1
        return out

    def _audio(self, path: Path, caption: str, link: list[Token]) -> list[Token]:
        size = path.stat().st_size
        if size > self.audio_left:  # over the budget: the link stays, and the page says why there is no player
            note = Token("text", "", 0, content=f" (not embedded: the report holds at most "
                                                f"{AUDIO_EMBED_LIMIT // (1024 * 1024)} MB of audio; "
                                                "open the file beside this report)")
            return [*link, note]
        self.audio_left -= size
        return [Token("html_inline", "", 0, content=_audio_player(_data_uri(path, "audio/wav"), caption))]


def render_html(markdown: str, run_dir: str | Path | None = None, title: str = "Run report",
                audio_limit: int = AUDIO_EMBED_LIMIT) -> str:
    """``markdown`` (a run's report.md) as a standalone HTML page; files it links are read from ``run_dir``."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    _Embedder(Path(run_dir) if run_dir is not None else None, audio_limit).rewrite(tokens)
    body = md.renderer.render(tokens, md.options, {})
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n")
