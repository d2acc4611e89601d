#!/bin/sh
# Makes a development CA and a server certificate for the TLS listeners, in certs/dev/
# (git-ignored). For production, mount real certificates and name them in the config.
#   certs/make-dev-certs.sh           create them when absent
#   certs/make-dev-certs.sh --force   create them anew
# Subscribers verify with certs/dev/ca.crt: mosquitto_sub --cafile certs/dev/ca.crt ...
set -eu
dir=${FIREHOSE_CERTS_DIR:-$(cd "$(dirname "$0")" && pwd)/dev}
if [ "${1:-}" != "--force" ] && [ -f "$dir/server.crt" ] && [ -f "$dir/server.key" ] && [ -f "$dir/ca.crt" ]; then
  exit 0
fi
command -v openssl >/dev/null || { echo "make-dev-certs: openssl is needed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
umask 077
host=$(hostname 2>/dev/null || echo localhost)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 825 \
  -subj "/CN=Firehose development CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$host" \
  -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,DNS:%s,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' "$host" > "$tmp/ext.cnf"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
  -days 825 -sha256 -extfile "$tmp/ext.cnf" -out "$tmp/server.crt" 2>/dev/null
chmod 644 "$tmp/ca.crt" "$tmp/server.crt"
mv "$tmp/ca.key" "$tmp/ca.crt" "$tmp/server.key" "$tmp/server.crt" "$dir/"
echo "make-dev-certs: created a development CA and server certificate in $dir (subscribers use --cafile $dir/ca.crt)"
