#!/usr/bin/env bash
# Renders a run directory's report in headless Chromium and saves a full-page screenshot.
#
#   scripts/report-screenshot.sh [RUN_DIR] [OUT_PNG]
#
# Defaults: the demo's run directory (autotune-runs/demo, run first if missing) and
# docs/report-demo.png. Installs Chromium from Debian's packages if it is not there (needs
# root, as on the project's machines). Checks that the page has every plot and no reference
# to anything outside it before taking the picture. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_DIR=${1:-autotune-runs/demo}
OUT=${2:-docs/report-demo.png}
WIDTH=${WIDTH:-1200}

if ! command -v chromium >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
cargo build --release -q -p autotune-cli
BIN=target/release/autotune
if [ ! -f "$RUN_DIR/metrics.jsonl" ]; then
  "$BIN" demo --out "$RUN_DIR"
fi
"$BIN" report "$RUN_DIR"
HTML="$RUN_DIR/report.html"

# Every plot is in the page, inline, and the page loads nothing from outside.
for id in error-vs-demos rank-distribution acceptance; do
  grep -q "<figure id=\"fig-$id\"><svg" "$HTML" || { echo "missing plot $id in $HTML" >&2; exit 1; }
done
if grep -Eo '(src|href)="[a-z]+://' "$HTML" | grep -q .; then
  echo "$HTML references an external resource" >&2
  exit 1
fi

# The page's height at this width, measured by Chromium's own layout in a probe page, then
# the full-page picture.
URL="file://$(realpath "$HTML")"
CHROME=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --mute-audio)
PROBE=$(mktemp --suffix=.html)
trap 'rm -f "$PROBE"' EXIT
cat > "$PROBE" <<HTML
<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" src="$URL" style="width:${WIDTH}px;height:100px;border:0"></iframe>
<script>
document.getElementById('f').onload = function () {
  var d = this.contentDocument;
  document.title = 'H=' + Math.max(d.documentElement.scrollHeight, d.body.scrollHeight);
  document.body.setAttribute('data-h', document.title);
};
</script></body></html>
HTML
HEIGHT=$("${CHROME[@]}" --allow-file-access-from-files --virtual-time-budget=3000 --dump-dom "file://$PROBE" 2>/dev/null \
  | grep -o 'data-h="H=[0-9]*"' | grep -o '[0-9]*' || true)
HEIGHT=${HEIGHT:-6000}
mkdir -p "$(dirname "$OUT")"
"${CHROME[@]}" --window-size="$WIDTH,$HEIGHT" --screenshot="$OUT" "$URL" 2>/dev/null
echo "screenshot of $HTML ($WIDTH x $HEIGHT): $OUT"
