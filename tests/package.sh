#!/usr/bin/env bash
# Packages a built provider the way a Terraform registry or mirror serves it:
#
#   tests/package.sh BINARY VERSION OS_ARCH OUT_DIR
#
# writes to OUT_DIR
#   terraform-provider-timescaledb_<VERSION>_<OS_ARCH>.zip    the binary, named
#       terraform-provider-timescaledb_v<VERSION> inside
#   terraform-provider-timescaledb_<VERSION>_manifest.json    protocol 6
#   terraform-provider-timescaledb_<VERSION>_SHA256SUMS       of the files above
# Used by `make release` and by the test that installs the package.
set -euo pipefail
binary=${1:?binary} version=${2:?version} platform=${3:?os_arch} out=${4:?out dir}
name=terraform-provider-timescaledb
mkdir -p "$out"
python3 - "$binary" "$out/${name}_${version}_${platform}.zip" "${name}_v${version}" <<'PY'
import sys, zipfile
src, dst, inner = sys.argv[1:]
# A fixed timestamp and mode, so the same binary always gives the same zip.
info = zipfile.ZipInfo(inner, date_time=(2020, 1, 1, 0, 0, 0))
info.external_attr = 0o755 << 16
info.compress_type = zipfile.ZIP_DEFLATED
with zipfile.ZipFile(dst, "w") as z, open(src, "rb") as f:
    z.writestr(info, f.read())
PY
printf '{\n  "version": 1,\n  "metadata": {\n    "protocol_versions": ["6.0"]\n  }\n}\n' > "$out/${name}_${version}_manifest.json"
(cd "$out" && sha256sum "${name}_${version}"_*.zip "${name}_${version}_manifest.json" > "${name}_${version}_SHA256SUMS")
ls "$out"
