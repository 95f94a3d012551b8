#!/bin/bash
# Stops the one-node SLURM of tools/slurm/start-cluster.sh: slurmd, slurmctld, then munged.
set -uo pipefail

stop() {
    local name=$1 pidfile=$2 pid
    pid=$(cat "$pidfile" 2>/dev/null || pgrep -x "$name" | head -n 1)
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 20); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null
}

if [[ $EUID -ne 0 ]]; then
    echo "stop-cluster: must run as root" >&2; exit 2
fi
stop slurmd /run/quantbench-slurmd.pid
stop slurmctld /run/quantbench-slurmctld.pid
stop munged /run/munge/munged.pid
echo "stop-cluster: stopped" >&2
