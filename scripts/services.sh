#!/usr/bin/env bash
# Makes sure the servers the test suite talks to are up, on a fresh machine too.
# PostgreSQL: the store suite runs against it (JIUZHU_TEST_PG, default
# postgres://postgres@127.0.0.1:5432/test). If it is not answering, install
# and start Debian's cluster; the tests themselves fail loudly if it is still
# unreachable.
set -euo pipefail

# Debian packages the tests use: aiosmtpd is the real SMTP server the email
# tests start on a loopback port; chromium and its driver run the browser tests.
need=()
dpkg -s python3-aiosmtpd >/dev/null 2>&1 || need+=(python3-aiosmtpd)
command -v pg_isready >/dev/null 2>&1 || need+=(postgresql-client)
# The browser tests (server/tests/browser.rs) drive headless Chromium through chromedriver.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# A Chinese font, so the pages (and their screenshots) show characters, not boxes.
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  echo "services: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

pg_url=${JIUZHU_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}

pg_ready() {
  command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432
}

if ! pg_ready; then
  echo "services: PostgreSQL is not answering on 127.0.0.1:5432; starting it" >&2
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_ready && break; sleep 1; done
fi

# The `test` database with trust auth for user postgres, as the suite expects.
if pg_ready && command -v psql >/dev/null 2>&1; then
  if ! psql "$pg_url" -c 'select 1' >/dev/null 2>&1; then
    su postgres -c "psql -c \"create database test\"" >/dev/null 2>&1 || true
  fi
fi
echo "services: PostgreSQL ready at $pg_url" >&2
