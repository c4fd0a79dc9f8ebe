#!/usr/bin/env bash
# Makes the server's self-signed TLS certificate: ECDSA P-256, SAN localhost and 127.0.0.1
# plus any names given. Writes DIR/server.crt and DIR/server.key (mode 0600) and prints the
# certificate's SHA-256 fingerprint, the value clients compare on first contact.
#
#   scripts/gen-cert.sh [--force] [--out DIR] [--days N] [NAME|IP ...]
set -euo pipefail

usage() {
  echo "usage: $0 [--force] [--out DIR] [--days N] [NAME|IP ...]" >&2
  echo "  --out DIR   where to write server.crt and server.key (default: certs)" >&2
  echo "  --force     replace an existing certificate and key" >&2
  echo "  --days N    validity in days (default: 825)" >&2
  exit 2
}

out=certs
force=0
days=825
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --out) [ $# -ge 2 ] || usage; out=$2; shift ;;
    --days) [ $# -ge 2 ] || usage; days=$2; shift ;;
    -h|--help) usage ;;
    -*) echo "gen-cert: error: unknown option $1" >&2; usage ;;
    *) names+=("$1") ;;
  esac
  shift
done
[[ "$days" =~ ^[0-9]+$ ]] || { echo "gen-cert: error: --days takes a number of days" >&2; exit 2; }
command -v openssl >/dev/null || { echo "gen-cert: error: openssl is not installed" >&2; exit 1; }

crt="$out/server.crt"
key="$out/server.key"
if [ "$force" -eq 0 ] && { [ -e "$crt" ] || [ -e "$key" ]; }; then
  echo "gen-cert: error: $crt or $key already exists; pass --force to replace them" >&2
  exit 1
fi

san="DNS:localhost,IP:127.0.0.1"
for name in "${names[@]+"${names[@]}"}"; do
  if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then san="$san,IP:$name"
  elif [[ "$name" =~ ^[A-Za-z0-9.*-]+$ ]]; then san="$san,DNS:$name"
  else echo "gen-cert: error: not a host name or IP address: $name" >&2; exit 2
  fi
done

mkdir -p "$out"
umask 077
tmp=$(mktemp -d "$out/.gen-cert.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
  -days "$days" -subj "/CN=securelogin" \
  -addext "subjectAltName=$san" \
  -addext "keyUsage=critical,digitalSignature" \
  -addext "extendedKeyUsage=serverAuth" \
  -keyout "$tmp/server.key" -out "$tmp/server.crt" 2>/dev/null
chmod 600 "$tmp/server.key"
chmod 644 "$tmp/server.crt"
# Key first, then certificate: a reader never sees a new certificate with an old key.
mv -f "$tmp/server.key" "$key"
mv -f "$tmp/server.crt" "$crt"

fingerprint=$(openssl x509 -in "$crt" -noout -fingerprint -sha256 | sed 's/^.*=//')
echo "wrote $crt and $key (SAN $san)"
echo "sha256 $fingerprint"
