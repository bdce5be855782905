#!/usr/bin/env bash
# The head node's MLflow tracking server, kept up: started by both cluster files (head_start_ray_commands).
#
#   scripts/mlflow_server.sh STORE_DIR [PORT] [WORKERS]
#
# Serves sqlite:///STORE_DIR/mlflow.db with artifacts under STORE_DIR/artifacts on 127.0.0.1:PORT (5000),
# and starts it again whenever it exits (a crash, an OOM kill), after 5 s. The sweep driver retries its MLflow
# calls through a short outage, and waits for /health before its first trial (orchestrator/tracking.py).
#
# WORKERS (default 1): the server's worker processes. MLflow's default of 4 on a head that also runs the sweep
# driver never came up under full CPU load (its workers died and restarted in a loop, /health silent for 3
# minutes), and with a SQLite store more workers add no write throughput: every write takes the database lock.
set -u
store=${1:?usage: $0 STORE_DIR [PORT] [WORKERS]}
port=${2:-5000}
workers=${3:-1}
# MLflow 3 also starts a job runner and seven huey consumer processes for its server-side GenAI jobs (trace
# rollups, evaluations); a sweep logs runs, metrics and artifacts only, and on a busy head they slowed
# (re)starts to minutes.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
mkdir -p "$store/artifacts"
while true; do
  # In its own process group: when it exits, what it started (uvicorn's workers, its job runner) goes with it
  # instead of holding the port against the next start.
  setsid mlflow server --host 127.0.0.1 --port "$port" --workers "$workers" \
    --backend-store-uri "sqlite:///$store/mlflow.db" --artifacts-destination "$store/artifacts" &
  server=$!
  wait "$server"
  status=$?
  kill -TERM -- "-$server" 2>/dev/null
  echo "$(date -Is) mlflow server exited with status $status; starting it again in 5 s" >&2
  sleep 5
done
