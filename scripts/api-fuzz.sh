#!/usr/bin/env bash
# The API fuzz pass: schemathesis generates requests from the server's own OpenAPI
# document (/api/openapi.json) and fails on any 5xx answer or any answer that breaks
# the document's schemas. It runs against `jiuzhu serve --demo` on a temporary SQLite
# database, once with an admin's token and once with a township clerk's, with a fixed
# seed and a bounded number of examples per operation, so a run is repeatable and
# stays within a few minutes on two cores.
#
#   scripts/api-fuzz.sh                 # the pass scripts/test.sh runs
#   FUZZ_EXAMPLES=200 FUZZ_SEED=7 scripts/api-fuzz.sh
#
# schemathesis (pinned below) is installed from PyPI into target/fuzz-venv on the
# first run and reused afterwards; only that install needs the network.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${FUZZ_EXAMPLES:-40}
SEED=${FUZZ_SEED:-20260301}
# Time budget of each of the two runs (seconds); the run stops there even if examples remain.
MAX_TIME=${FUZZ_MAX_TIME:-60}

venv=target/fuzz-venv
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "api-fuzz: installing schemathesis $SCHEMATHESIS_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The debug binary the cargo tests built (the build is a no-op then).
cargo build --quiet --bin jiuzhu
jiuzhu=$PWD/target/debug/jiuzhu

work=$(mktemp -d)
server_pid=
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

db="sqlite://$work/fuzz.db"
# The report stays for a failing run: it names the request that broke a check.
report_dir=target/api-fuzz-report
rm -rf "$report_dir"

"$jiuzhu" --db "$db" serve --demo --listen 127.0.0.1:0 >"$work/serve.log" 2>&1 &
server_pid=$!
base=
for _ in $(seq 1 600); do
    base=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$work/serve.log" | head -n 1 || true)
    [[ -n "$base" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        cat "$work/serve.log" >&2
        echo "api-fuzz: the server did not start" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$base" ]]; then
    cat "$work/serve.log" >&2
    echo "api-fuzz: the server printed no address" >&2
    exit 1
fi

token() {
    "$jiuzhu" --db "$db" tokens create --user "$1" --label api-fuzz 2>/dev/null | tail -n 1
}

status=0
for user in admin zx_clerk; do
    bearer=$(token "$user")
    if [[ -z "$bearer" ]]; then
        echo "api-fuzz: no token for $user" >&2
        exit 1
    fi
    echo "api-fuzz: $base as $user, $EXAMPLES examples per operation, seed $SEED"
    # The coverage phase is left out: on this Python (3.11) it stops with an internal
    # error of the property-testing library (describing a lambda's source), not a finding
    # against the server. Examples, fuzzing and stateful runs cover every operation.
    "$venv/bin/schemathesis" run "$base/api/openapi.json" \
        --checks not_a_server_error,response_schema_conformance \
        --max-examples "$EXAMPLES" \
        --phases examples,fuzzing,stateful \
        --seed "$SEED" \
        --max-time "$MAX_TIME" \
        --workers 2 \
        --header "Authorization: Bearer $bearer" \
        --report junit --report-dir "$report_dir/$user" \
        --generation-database none \
        --no-color || status=1
    if ! kill -0 "$server_pid" 2>/dev/null; then
        cat "$work/serve.log" >&2
        echo "api-fuzz: the server died during the run" >&2
        exit 1
    fi
done
if [[ "$status" != 0 ]]; then
    echo "api-fuzz: findings above (reports in $report_dir)" >&2
    exit 1
fi
echo "api-fuzz: no server error and no schema violation"
