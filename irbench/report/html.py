"""The leaderboard as one self-contained HTML page: inline CSS and JS, figures as base64 PNG.

Nothing is fetched: no fonts, scripts or images from elsewhere, so the page works offline and
from ``file://``. Clicking a column header sorts the table (vanilla JS, numeric on the cells'
``data-value``; empty cells last); ``#sort=COLUMN-asc|desc`` in the URL sorts on load.
"""

from __future__ import annotations

import base64
from html import escape

from irbench.report.leaderboard import Leaderboard
from irbench.report.render import (
    EFF_HEADERS,
    _is_best,
    eff_columns,
    fmt_eff,
    fmt_metric,
    footnote,
)

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1200px;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.2rem}
p.sub{color:#555;margin-top:0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:1rem 0}
th,td{padding:.35rem .7rem;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
thead th{border-bottom:2px solid #333;background:#fafafa}
#leaderboard thead th{cursor:pointer;user-select:none}
#leaderboard thead th:hover{background:#eef}
thead th[data-dir=asc]::after{content:" \\25B2";font-size:.7em}
thead th[data-dir=desc]::after{content:" \\25BC";font-size:.7em}
tr.baseline td{background:#fff8e1}
td.best{font-weight:700}
sup{color:#b00;font-weight:700}
.notes{font-size:.9rem;color:#444;max-width:70rem}
.figs{display:flex;flex-wrap:wrap;gap:1rem}
.figs img{max-width:100%;border:1px solid #ddd}
details{margin-top:1.5rem;font-size:.85rem}
code{font-size:.85em}
"""

JS = """
(function(){
  var table=document.getElementById('leaderboard');
  var heads=table.tHead.rows[0].cells;
  function key(row,i){
    var c=row.cells[i],v=c.getAttribute('data-value');
    if(v===null) return c.textContent.trim().toLowerCase();
    return v===''?null:parseFloat(v);
  }
  function sortBy(i,dir){
    var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){
      var x=key(a,i),y=key(b,i);
      if(x===null&&y===null) return 0;
      if(x===null) return 1;
      if(y===null) return -1;
      var c=(typeof x==='number')?x-y:(x<y?-1:x>y?1:0);
      return dir==='asc'?c:-c;
    });
    rows.forEach(function(r){body.appendChild(r);});
    for(var j=0;j<heads.length;j++) heads[j].removeAttribute('data-dir');
    heads[i].setAttribute('data-dir',dir);
  }
  for(var i=0;i<heads.length;i++){
    (function(i){
      heads[i].addEventListener('click',function(){
        var cur=heads[i].getAttribute('data-dir');
        var first=heads[i].getAttribute('data-first')||'desc';
        sortBy(i,cur?(cur==='asc'?'desc':'asc'):first);
      });
    })(i);
  }
  var m=/#sort=(\\d+)-(asc|desc)/.exec(location.hash);
  if(m&&+m[1]<heads.length) sortBy(+m[1],m[2]);
})();
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _num(v: float | None) -> str:
    return "" if v is None or v != v else repr(float(v))


def to_html(lb: Leaderboard, figures: bool = True, title: str | None = None) -> str:
    from irbench.report.figures import latency_figure, size_figure

    title = title or f"irbench leaderboard: {lb.measure}"
    effs = eff_columns(lb)
    lower_better = {"ms_per_query", "index_mb", "avg_doc_nnz", "flops"}
    heads = ['<th data-first="asc">System</th>']
    heads += [f"<th>{escape(ds)}</th>" for ds in lb.datasets]
    if lb.show_mean:
        heads.append("<th>Mean</th>")
    heads += [
        f'<th data-first="{"asc" if k in lower_better else "desc"}">{escape(EFF_HEADERS[k])}</th>'
        for k in effs
    ]
    body = []
    for row in lb.rows:
        tds = [f"<td>{escape(row.name)}{' <em>(baseline)</em>' if row.baseline else ''}</td>"]
        for ds in lb.datasets:
            cell = row.cells.get(ds)
            value = cell.value if cell else None
            cls = ' class="best"' if _is_best(lb, ds, value) else ""
            mark = ""
            if cell and cell.sig:
                mark = f"<sup>{'†' if cell.sig == '+' else '‡'}</sup>"
            ptitle = (
                f' title="p = {cell.p:.3g}, Holm-adjusted {cell.p_holm:.3g}"'
                if cell and cell.p is not None
                else ""
            )
            tds.append(
                f'<td data-value="{_num(value)}"{cls}{ptitle}>{fmt_metric(value)}{mark}</td>'
            )
        if lb.show_mean:
            cls = ' class="best"' if _is_best(lb, "mean", row.mean) else ""
            tds.append(f'<td data-value="{_num(row.mean)}"{cls}>{fmt_metric(row.mean)}</td>')
        for k in effs:
            v = row.efficiency.get(k)
            cls = ' class="best"' if _is_best(lb, k, v) else ""
            tds.append(f'<td data-value="{_num(v)}"{cls}>{escape(fmt_eff(k, v))}</td>')
        trcls = ' class="baseline"' if row.baseline else ""
        body.append(f"<tr{trcls}>" + "".join(tds) + "</tr>")
    notes = "".join(f"<p>{escape(n)}</p>" for n in footnote(lb))
    sub = (
        f"{len(lb.rows)} systems, {len(lb.datasets)} datasets, "
        f"{len(lb.run_dirs)} run directories. Click a column header to sort."
    )
    figs = ""
    if figures and lb.efficiency_dataset:
        figs = (
            '<h2>Effectiveness and efficiency</h2><div class="figs">'
            + _img(latency_figure(lb), f"{lb.measure} vs latency")
            + _img(size_figure(lb), f"{lb.measure} vs index size")
            + "</div>"
        )
    sources = "".join(
        f"<tr><td>{escape(row.name)}</td><td>{escape(ds)}</td>"
        f"<td><code>{escape(str(run.path))}</code></td>"
        f"<td><code>{escape(((run.manifest.get('git') or {}).get('commit') or '')[:10])}</code></td></tr>"
        for row in lb.rows
        for ds, run in sorted(row.runs.items())
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
        f"<h1>{escape(title)}</h1><p class=sub>{escape(sub)}</p>\n"
        f'<table id="leaderboard"><thead><tr>{"".join(heads)}</tr></thead>\n'
        f"<tbody>\n" + "\n".join(body) + "\n</tbody></table>\n"
        f'<div class="notes">{notes}</div>\n{figs}\n'
        "<details><summary>Run directories</summary><table><thead><tr><th>System</th>"
        "<th>Dataset</th><th>Run directory</th><th>Commit</th></tr></thead><tbody>"
        f"{sources}</tbody></table></details>\n"
        f"<script>{JS}</script>\n</body></html>\n"
    )
