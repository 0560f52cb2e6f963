"""Write static/css/plotly.css: the rules plotly.js would otherwise inject as an inline <style> element.

Under the Content-Security-Policy (style-src 'self', no 'unsafe-inline') plotly.js may not create that element, so
the page links this file instead, with the id and class plotly.js looks for before injecting
(`<link id="plotly.js-style-global" class="no-inline-styles">`). The rules are read from the plotly.min.js the
plotly package ships, so the file matches the version served; tests/test_content_security_policy.py checks it.

    .venv/bin/python scripts/plotly_css.py          # rewrite the file after upgrading plotly
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import plotly

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "static" / "css" / "plotly.css"
BUNDLE = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''
PAIR = re.compile(rf"({STRING}):({STRING})")


def _object_after(source: str, marker: str) -> str:
    start = source.index(marker) + marker.index("{")
    depth, quote, i = 0, None, start
    while True:
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return source[start:i + 1]
        i += 1


def plotly_css(bundle: Path = BUNDLE) -> str:
    source = bundle.read_text(encoding="utf-8")
    version = re.search(r'version:"([0-9.]+)"', source)
    rules = [(key[1:-1], value[1:-1]) for key, value in PAIR.findall(_object_after(source, '={"X,X div"'))]
    lines = [f"/* plotly.js {version.group(1) if version else '?'}'s own rules, written by scripts/plotly_css.py. */"]
    # plotly.js inserts each rule at the top of its sheet, so the last one comes first.
    for selector, body in reversed(rules):
        selector = re.sub(r"^,", " ,", selector)
        selector = selector.replace("X", ".js-plotly-plot .plotly").replace("Y", ".plotly-notifier")
        lines.append(f"{selector}{{{body}}}")
    return "\n".join(lines) + "\n"


def main() -> int:
    TARGET.write_text(plotly_css(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
