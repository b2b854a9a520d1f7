# The wrk load shared by bench/load.sh and bench/vs-seed.sh (sourced; each default can be set in the
# environment): durability modes, run length, connections, wrk threads, runs, and the real ping.
MODES=${MODES:-"none batch"}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
SHARED=${TELEMETRY_SHARED_DIR:-$(cd .. && pwd)/shared}
PING=$SHARED/data/pings/v4.saved-session.Fx40.0a2-aurora.2015-05.uberi.json
