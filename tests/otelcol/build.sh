#!/usr/bin/env bash
# Builds otelcol-procgroups, the upstream OpenTelemetry Collector distribution
# that the integration tests run (see main.go and components.go), next to
# this script. go.mod and go.sum pin every module, so the build needs the Go
# module proxy only for modules missing from Go's module cache; Go's build
# cache makes a rebuild with nothing changed take seconds.
#
#   tests/otelcol/build.sh            # writes tests/otelcol/otelcol-procgroups
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v go >/dev/null; then
    echo "build.sh: the Go toolchain (go) is not on PATH; it is needed to build the Collector" >&2
    exit 1
fi

# -trimpath keeps local paths out of the binary; -mod=readonly refuses to
# build if go.mod and go.sum do not already pin every module.
go build -mod=readonly -trimpath -o otelcol-procgroups .
./otelcol-procgroups --version
