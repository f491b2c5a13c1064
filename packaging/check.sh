#!/usr/bin/env bash
# Checks the packaging artefacts: the systemd unit with systemd-analyze, the
# .deb with dpkg-deb (contents, scripts, extraction into a scratch root), and
# the container image when a Docker daemon is reachable. Run by CI after
# `make deb`.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "--- systemd-analyze verify packaging/systemd/paas-runner.service"
if command -v systemd-analyze >/dev/null 2>&1; then
  # The unit names /usr/bin/paas-runner; verify a copy pointing at the built
  # binary so the check does not depend on an installed package.
  sed "s|/usr/bin/paas-runner|$PWD/bin/paas-runner|" packaging/systemd/paas-runner.service \
    > "$tmp/paas-runner.service"
  systemd-analyze verify "$tmp/paas-runner.service"
  grep -q '^Type=notify$' "$tmp/paas-runner.service"
  grep -q '^TimeoutStopSec=120$' "$tmp/paas-runner.service"
else
  echo "systemd-analyze missing"; exit 1
fi

deb=$(ls -1t dist/*.deb | head -1)
echo "--- dpkg-deb --contents $deb"
dpkg-deb --contents "$deb" | tee "$tmp/contents"
for f in ./usr/bin/paas-runner ./lib/systemd/system/paas-runner.service \
         ./etc/paas-runner/config.toml.example ./usr/share/man/man1/paas-runner.1.gz \
         ./usr/share/doc/paas-runner/README.md ./var/lib/paas-runner/; do
  grep -q " $f\$" "$tmp/contents" || { echo "missing in package: $f"; exit 1; }
done
# List to a file first: grep -q closing the pipe early would make tar fail
# with SIGPIPE under pipefail.
dpkg-deb --ctrl-tarfile "$deb" | tar -t > "$tmp/control"
grep -q 'postinst$' "$tmp/control" || { echo "no postinst"; cat "$tmp/control"; exit 1; }

echo "--- dpkg -x into a scratch root"
dpkg -x "$deb" "$tmp/root"
"$tmp/root/usr/bin/paas-runner" version
"$tmp/root/usr/bin/paas-runner" config check "$tmp/root/etc/paas-runner/config.toml.example"
dpkg-deb --info "$deb" > "$tmp/info"
grep -q 'Package: paas-runner' "$tmp/info"

echo "--- container image"
if docker info >/dev/null 2>&1; then
  docker build -q -f packaging/Dockerfile --target prebuilt --build-arg BASE_IMAGE=scratch \
    -t paas-runner:ci-check . >/dev/null
  docker run --rm paas-runner:ci-check version
  [ "$(docker image inspect -f '{{.Config.User}}' paas-runner:ci-check)" = "65532:65532" ]
  docker rmi -f paas-runner:ci-check >/dev/null
else
  if [ "${CI:-}" = "true" ]; then echo "no Docker daemon under CI"; exit 1; fi
  echo "SKIP container image: no Docker daemon reachable"
fi
echo "packaging OK"
