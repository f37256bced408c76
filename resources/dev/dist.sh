#!/usr/bin/env bash
# dist.sh (make dist): static release binaries of benthos-kinesis for linux and darwin on amd64
# and arm64, each in dist/benthos-kinesis_<version>_<os>_<arch>.tar.gz with LICENSE, README.md,
# CHANGELOG.md, docs/, the config examples (config/examples/*.yaml), the IAM policies and table
# templates (resources/iam, resources/table) and THIRD_PARTY_LICENSES (the licence and NOTICE files of Go and of every module
# linked into the binary: its BSD, MIT and Apache-2.0 parts ask for them to travel with it), then
# dist/SHA256SUMS (check with `cd dist && sha256sum -c SHA256SUMS`).
#
# VERSION, COMMIT and DATE_BUILT are stamped into the binary (the Makefile passes them; by default
# git describe, the HEAD commit and now). The archive names drop a leading "v" (v0.1.0 -> 0.1.0).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
COMMIT="${COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}"
DATE_BUILT="${DATE_BUILT:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}"
PLATFORMS="${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}"
OUT="$ROOT/dist"
NAME=benthos-kinesis
FILE_VERSION="${VERSION#v}"

case "$VERSION" in
  *-dirty) echo "dist.sh: warning: the working tree has uncommitted changes ($VERSION)" >&2 ;;
esac

for f in LICENSE README.md CHANGELOG.md; do
  [[ -f "$f" ]] || { echo "dist.sh: $f is missing" >&2; exit 1; }
done

rm -rf "$OUT"
mkdir -p "$OUT"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# third_party_licenses writes, for every module linked into the binary for $1/$2, its path,
# version and licence/notice files (the module cache holds them: go build downloaded them).
third_party_licenses() {
  local goos="$1" goarch="$2"
  # The Go runtime and standard library are linked in too (BSD-3-Clause).
  printf '================================================================================\n'
  printf 'Go standard library %s: LICENSE\n' "$(go env GOVERSION)"
  printf '================================================================================\n\n'
  cat "$(go env GOROOT)/LICENSE"
  printf '\n'
  GOOS="$goos" GOARCH="$goarch" CGO_ENABLED=0 go list -deps \
    -f '{{with .Module}}{{if not .Main}}{{.Path}}{{"\t"}}{{.Version}}{{"\t"}}{{if .Replace}}{{.Replace.Dir}}{{else}}{{.Dir}}{{end}}{{end}}{{end}}' \
    ./cmd/benthos-kinesis | sort -u | while IFS=$'\t' read -r path version dir; do
      [[ -n "$path" ]] || continue
      mapfile -t files < <(find "$dir" -maxdepth 1 -type f \( -iname 'LICEN[CS]E*' -o -iname 'COPYING*' -o -iname 'NOTICE*' \) | sort)
      if [[ ${#files[@]} -eq 0 ]]; then
        echo "dist.sh: no licence file found for $path $version in $dir" >&2
        return 1
      fi
      for f in "${files[@]}"; do
        printf '================================================================================\n'
        printf '%s %s: %s\n' "$path" "$version" "$(basename "$f")"
        printf '================================================================================\n\n'
        cat "$f"
        printf '\n'
      done
    done
}

for platform in $PLATFORMS; do
  goos="${platform%/*}" goarch="${platform#*/}"
  base="${NAME}_${FILE_VERSION}_${goos}_${goarch}"
  dir="$work/$base"
  mkdir -p "$dir"
  echo "== $base"
  # Static (no cgo), no local paths (-trimpath), no symbol table or DWARF (-s -w). On darwin
  # Go always links the system's libSystem dynamically (macOS has no static binaries); nothing
  # else. The linker signs darwin/arm64 binaries ad hoc, as macOS requires.
  CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" go build -trimpath \
    -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT -X main.dateBuilt=$DATE_BUILT" \
    -o "$dir/$NAME" ./cmd/benthos-kinesis
  cp LICENSE README.md CHANGELOG.md "$dir/"
  # What the README points a newcomer to: the guides, the examples, the policies and the table.
  mkdir -p "$dir/config/examples" "$dir/resources"
  cp -R docs "$dir/"
  cp config/examples/*.yaml "$dir/config/examples/"
  cp -R resources/iam resources/table "$dir/resources/"
  third_party_licenses "$goos" "$goarch" >"$dir/THIRD_PARTY_LICENSES"
  # Owner and group 0, files in name order: the archive does not depend on who built it.
  tar -C "$work" --owner=0 --group=0 --numeric-owner --sort=name -czf "$OUT/$base.tar.gz" "$base"
done

(cd "$OUT" && sha256sum -- *.tar.gz >SHA256SUMS && sha256sum -c --quiet SHA256SUMS)
echo "dist.sh: $(ls "$OUT"/*.tar.gz | wc -l) archives and SHA256SUMS in dist/"
cat "$OUT/SHA256SUMS"
