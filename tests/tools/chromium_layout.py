#!/usr/bin/env python3
"""Renders a report page in headless Chromium and prints, as JSON, how it was laid out.

Usage: chromium_layout.py BROWSER PAGE.html WORK_DIR

A probe script appended to a copy of the page records, once the page has loaded: every table's
laid-out width, height and row count (by id), whether an element with id ranked-none exists, each
plot figure's id and SVG size, the rendered widths of the plots' axis labels, the number of drawn
points and of frontier lines. The JSON goes to stdout; exit 1 (with Chromium's last lines on stderr)
when the page did not render.
"""
import html
import json
import re
import subprocess
import sys

PROBE = """<script>
window.addEventListener('load', () => {
  const size = el => { const r = el.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
  const out = {
    tables: Object.fromEntries([...document.querySelectorAll('table')].map(t => [t.id, size(t).concat([t.rows.length])])),
    ranked_none: !!document.getElementById('ranked-none'),
    plots: [...document.querySelectorAll('figure.plot')].map(f => [f.id].concat(size(f.querySelector('svg')))),
    x_labels: [...document.querySelectorAll('figure.plot svg text.x-label')].map(t => Math.round(t.getBBox().width)),
    y_labels: [...document.querySelectorAll('figure.plot svg text.y-label')].map(t => Math.round(t.getBBox().width)),
    points: document.querySelectorAll('figure.plot svg circle, figure.plot svg polygon').length,
    frontier_lines: document.querySelectorAll('figure.plot svg polyline.frontier-line').length,
  };
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def main():
    browser, page, work = sys.argv[1:4]
    probe_page = f"{work}/probe.html"
    with open(page, encoding="utf-8") as f:
        text = f.read()
    with open(probe_page, "w", encoding="utf-8") as f:
        f.write(text.replace("</body>", PROBE + "</body>"))
    try:
        run = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                              "--no-first-run", f"--user-data-dir={work}/profile", "--virtual-time-budget=5000",
                              "--window-size=1400,1000", "--dump-dom", f"file://{probe_page}"],
                             capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        print("chromium did not finish within 120 s", file=sys.stderr)
        return 1
    m = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    if run.returncode != 0 or not m:
        print(f"chromium exit {run.returncode}, no probe in the page:", file=sys.stderr)
        print("\n".join(run.stderr.splitlines()[-5:]), file=sys.stderr)
        return 1
    print(json.dumps(json.loads(html.unescape(m.group(1)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
