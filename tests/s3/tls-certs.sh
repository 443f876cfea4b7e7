#!/usr/bin/env bash
# tests/s3/tls-certs.sh — a private CA and a server certificate for the TLS
# tests, made with the openssl command (installed with apt-get when missing
# and root; otherwise it fails saying what to install).
#
# Usage: tests/s3/tls-certs.sh DIR
# Writes into DIR (created):
#   ca.pem, ca.key       a self-signed CA "cairn test CA" (2 days)
#   server.pem, server.key
#                        a server certificate signed by that CA for
#                        IP 127.0.0.1 only (so https://localhost fails the
#                        name check), serverAuth
#   other-ca.pem         another self-signed CA that signed nothing here
#   not-pem.pem          a file that is no certificate at all
set -euo pipefail
DIR=${1:?usage: tls-certs.sh DIR}

. "$(cd "$(dirname "$0")" && pwd)/srvlib.sh"
command -v openssl >/dev/null 2>&1 || srv_install tls-certs openssl || exit 1

mkdir -p "$DIR"
cd "$DIR"
q() { "$@" >openssl.log 2>&1 || { cat openssl.log >&2; exit 1; }; }
q openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=cairn test CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
	-keyout ca.key -out ca.pem
q openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
cat >server.ext <<'EOF'
subjectAltName = IP:127.0.0.1
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
EOF
q openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
	-extfile server.ext -out server.pem
q openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=some other CA" \
	-keyout other-ca.key -out other-ca.pem
echo "this is not a certificate" >not-pem.pem
chmod 600 ca.key server.key other-ca.key
rm -f server.csr openssl.log
