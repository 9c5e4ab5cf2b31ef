"""The HTML a report is written as: one page of blocks (text, charts, tables), each chart and table
also a file of its own, and the Vega libraries inline (no server, no network)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import polars as pl

from analysis.charts import save_chart
from cchsweep.schema import axis_columns


def esc(text: str) -> str:
    return html.escape(str(text))


def fmt(value, se=None, axis: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if axis:  # a grid value: as given (0.5, 3)
            return f"{value:g}"
        text = f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.3g}"
        return text + (f" ± {_se(se)}" if se is not None else "")
    return str(value)


def _se(se: float) -> str:
    """An SE to 4 decimals, or to 2 significant digits below 0.001, where 4 decimals would round it to 0."""
    return f"{se:.2g}" if 0 < abs(se) < 1e-3 else f"{se:.4f}"


TEXT_CELL = 40  # characters: a longer cell is prose and wraps


def html_table(table: pl.DataFrame, cols: list[tuple[str, str, str | None]] | None = None) -> str:
    cols = cols or [(c, c, None) for c in table.columns]
    head = "".join(f"<th>{esc(label)}</th>" for label, _, _ in cols)
    axes = axis_columns()

    def cell(text: str) -> str:  # numbers stay on one line; sentences (findings, notes) wrap
        return f"<td class='text'>{esc(text)}</td>" if len(text) > TEXT_CELL else f"<td>{esc(text)}</td>"

    body = "".join(
        "<tr>" + "".join(cell(fmt(row.get(v), row.get(se) if se else None, v in axes)) for _, v, se in cols) + "</tr>"
        for row in table.iter_rows(named=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Page:
    """Collects HTML blocks and chart specs; writes the files as it goes."""

    def __init__(self, out: Path):
        self.out = out
        self.blocks: list[str] = []
        self.specs: list[tuple[str, dict]] = []

    def text(self, block: str) -> None:
        self.blocks.append(block)

    def chart(self, name: str, chart) -> None:
        spec = save_chart(chart, self.out, name)
        self.specs.append((f"chart-{len(self.specs)}", spec))
        self.blocks.append(
            f"<div class='chart' id='{self.specs[-1][0]}'></div>"
            f"<p class='files'><a href='{name}.png'>{name}.png</a> · <a href='{name}.svg'>{name}.svg</a></p>"
        )

    def table(self, name: str, caption: str, table: pl.DataFrame, cols=None) -> None:
        table.write_csv(self.out / f"{name}.csv")
        block = (
            f"<h3>{esc(caption)}</h3><div class='scroll'>{html_table(table, cols)}</div>"
            f"<p class='files'><a href='{name}.csv'>{name}.csv</a> · <a href='{name}.html'>{name}.html</a></p>"
        )
        (self.out / f"{name}.html").write_text(
            f"<!DOCTYPE html><html><head><meta charset='UTF-8'>{STYLE}</head><body>{block}</body></html>\n",
            encoding="utf-8",
        )
        self.blocks.append(block)

    def write(self, study: str, shared_bundle: str | None = None) -> Path:
        if shared_bundle is None:
            script = f"<script type='text/javascript'>\n{_script_text(vega_bundle())}\n</script>"
        else:
            script = f"<script type='text/javascript' src='{esc(shared_bundle)}'></script>"
        embeds = "\n".join(
            f"vegaEmbed('#{div}', {_script_json(spec)}, {{mode: 'vega-lite'}}).catch(console.error);"
            for div, spec in self.specs
        )
        page = (
            f"<!DOCTYPE html>\n<html><head><meta charset='UTF-8'><title>cchsweep report: {esc(study)}</title>"
            f"{STYLE}{script}</head>\n<body>\n"
            + "\n".join(self.blocks)
            + f"\n<script type='text/javascript'>\n{embeds}\n</script>\n</body></html>\n"
        )
        path = self.out / "index.html"
        path.write_text(page, encoding="utf-8")
        return path


def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script (from vl-convert: no network)."""
    import vl_convert as vlc
    from altair.utils._importers import vl_version_for_vl_convert

    return vlc.javascript_bundle(vl_version=vl_version_for_vl_convert())  # type: ignore[call-arg]


def _script_json(spec: dict) -> str:
    return _script_text(json.dumps(spec, allow_nan=False))


def _script_text(text: str) -> str:
    return text.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT")


STYLE = (
    "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
    "margin:.5em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}"
    ".scroll,.chart{overflow-x:auto;max-width:100%}td.text{white-space:normal;min-width:14em;text-align:left}"
    "code{font-size:12px;word-break:break-all}"
    "th{background:#f3f3f3}.verdict{font-weight:bold}.files{color:#888;font-size:12px}</style>"
)
