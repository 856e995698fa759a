#!/usr/bin/env bash
# Render the dvc.yaml plots to one PNG offline: `dvc plots show` into a temporary folder, a copy of its index.html
# with the CDN <script> tags pointed at local vega / vega-lite / vega-embed builds and the charts laid out in a
# grid, then a headless-Chromium screenshot sized to the page. Run from the repository root.
#
# Usage: benchmarks/render_plots.sh [OUT.png] [PLOT_ID ...]       (-h, --help: this text)
#   benchmarks/render_plots.sh docs/plots.png                        # sst2's charts (the default), throughput aside
#   benchmarks/render_plots.sh docs/plots.png metrics/charts/dev_accuracy metrics/charts/confusion
#   TASK=rotten_tomatoes benchmarks/render_plots.sh docs/plots.png   # another task's
# A PLOT_ID is a chart of dvc.yaml's plots: a folder of metrics/charts/ with one file per task; TASK picks the file.
#
# Installs nothing. Needs, once (a package registry is enough, no other internet):
#   - Chromium:  apt-get install -y chromium        (or CHROMIUM=/path/to/chrome)
#   - the versions dvc-render's HTML loads from jsDelivr (see the <script> tags of dvc_plots/index.html), under
#     VEGA_DIR (default ~/.cache/bilstm-distill/vega_npm, or $BILSTM_DISTILL_CACHE/vega_npm):
#       mkdir -p "$VEGA_DIR" && cd "$VEGA_DIR" && npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2 \
#         && for f in *.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
#     (any folder with vega.min.js, vega-lite.min.js and vega-embed.min.js in build/ folders below it works, e.g.
#     one where `npm install vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2` ran).
# Env: TASK (default sst2), WIDTH (page width in px, default 1500),
#      REVS (draw `dvc plots diff $REVS` instead of `dvc plots show`, e.g. REVS=HEAD or REVS="main exp-1"),
#      VEGA_DIR, CHROMIUM, KEEP (keep the temporary folder). Missing plot files render as empty charts (DVC warns).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac

out=${1:-docs/plots.png}
shift || true
task=${TASK:-sst2}
width=${WIDTH:-1500}
vega_dir=${VEGA_DIR:-${BILSTM_DISTILL_CACHE:-$HOME/.cache/bilstm-distill}/vega_npm}
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
[ -n "$chromium" ] || { echo "render_plots: no Chromium (apt-get install -y chromium, or set CHROMIUM)" >&2; exit 2; }

find_js() {  # the first $1 below $vega_dir, as an absolute path
    local f
    f=$(find "$vega_dir" -path "*/build/$1" 2>/dev/null | sort | head -n 1)  # not build-es5/
    [ -n "$f" ] || { echo "render_plots: no $1 under $vega_dir (see: benchmarks/render_plots.sh --help)" >&2; exit 2; }
    realpath "$f"
}
vega=$(find_js vega.min.js)
vega_lite=$(find_js vega-lite.min.js)
vega_embed=$(find_js vega-embed.min.js)

if [ $# -eq 0 ]; then
    set -- metrics/charts/dev_accuracy metrics/charts/accuracy_vs_speed metrics/charts/cross_entropy_loss \
           metrics/charts/distillation_loss metrics/charts/confusion
fi
# DVC draws every chart (given as targets, an existing path would be drawn twice: once more without its dvc.yaml
# settings); the page shows only TASK's file of each chart asked for, by the id dvc-render gives it (the file's
# path with / and . as _).
shown=""
for chart in "$@"; do
    id="${chart%/}/$task.csv"
    shown+="${shown:+,}#${id//[\/.]/_}"
done

work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "render_plots: keeping $work" >&2 || trap 'rm -rf "$work"' EXIT
if [ -n "${REVS:-}" ]; then  # e.g. REVS="HEAD": the workspace against HEAD (`dvc plots diff`)
    # shellcheck disable=SC2086
    dvc plots diff $REVS -o "$work/dvc_plots" >"$work/dvc.log" 2>&1 || { cat "$work/dvc.log" >&2; exit 1; }
else
    dvc plots show -o "$work/dvc_plots" >"$work/dvc.log" 2>&1 || { cat "$work/dvc.log" >&2; exit 1; }
fi
grep -i "failed\|error" "$work/dvc.log" >&2 || true

# The copy: local scripts, charts side by side, and the page size written into <title> once vega has drawn.
sed -e "s#https://cdn.jsdelivr.net/npm/vega@[0-9.]*#file://$vega#" \
    -e "s#https://cdn.jsdelivr.net/npm/vega-lite@[0-9.]*#file://$vega_lite#" \
    -e "s#https://cdn.jsdelivr.net/npm/vega-embed@[0-9.]*#file://$vega_embed#" \
    -e "s|</head>|<style>body{display:flex;flex-wrap:wrap;align-items:flex-start;width:${width}px;margin:0;padding:6px;background:white} body>div{margin:6px 10px;display:none} $shown{display:block} .vega-embed details{display:none}</style></head>|" \
    -e "s|</body>|<script>window.addEventListener('load',()=>setTimeout(()=>{let w=0,h=0;for(const d of document.body.children){const r=d.getBoundingClientRect();w=Math.max(w,r.right);h=Math.max(h,r.bottom)}document.title='SIZE '+Math.ceil(w+12)+'x'+Math.ceil(h+12)},2000))</script></body>|" \
    "$work/dvc_plots/index.html" >"$work/offline.html"
if grep -q "cdn.jsdelivr" "$work/offline.html"; then
    echo "render_plots: a CDN script tag was not rewritten (dvc-render changed its versions?)" >&2; exit 1
fi

flags=(--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update
       --disable-sync --no-first-run --hide-scrollbars --allow-file-access-from-files --virtual-time-budget=15000)
# First pass: draw, report vega's console errors (a broken template draws nothing), measure the charts.
timeout 120 "$chromium" "${flags[@]}" --user-data-dir="$work/profile1" --window-size="$width,400" --enable-logging=stderr --v=0 \
    --dump-dom "file://$work/offline.html" >"$work/dom.html" 2>"$work/chromium.log" || true
if grep "CONSOLE" "$work/chromium.log" | grep -qi "uncaught\|error"; then
    echo "render_plots: vega reported errors:" >&2; grep "CONSOLE" "$work/chromium.log" | grep -i "uncaught\|error" >&2; exit 1
fi
size=$(sed -n 's#.*<title>SIZE \([0-9]*\)x\([0-9]*\)</title>.*#\1,\2#p' "$work/dom.html")
[ -n "$size" ] || { echo "render_plots: the page did not finish drawing (vega scripts not loaded?)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
timeout 120 "$chromium" "${flags[@]}" --user-data-dir="$work/profile2" --window-size="$size" \
    --screenshot="$(realpath -m "$out")" "file://$work/offline.html" >/dev/null 2>&1 \
    || { echo "render_plots: Chromium failed or hung (exit $?) taking the screenshot" >&2; exit 1; }
echo "render_plots: wrote $out (${size/,/x} px, $(($(stat -c %s "$out") / 1024)) KiB)"
