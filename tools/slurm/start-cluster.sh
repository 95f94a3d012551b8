#!/bin/bash
# A one-node SLURM on localhost, for trying and testing profiles/slurm (root only; no systemd).
# Installs Debian's slurm-wlm and munge when missing, writes /etc/slurm/slurm.conf (the plugin's
# job step drops SLURM_CONF, so the config must sit at the default place), starts munged,
# slurmctld and slurmd, and waits until the node is idle. Running it again while the cluster is
# up does nothing. tools/slurm/stop-cluster.sh stops it.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by quantbench tools/slurm/start-cluster.sh"
STATE=/var/spool/quantbench-slurm
LOGS=/var/log/quantbench-slurm
WAIT_S=${QB_SLURM_WAIT_S:-60}

say() { echo "start-cluster: $*" >&2; }

node_ready() {
    # idle, mixed or allocated: the node takes jobs
    timeout 10 sinfo -h -n localhost -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'
}

if [[ $EUID -ne 0 ]]; then
    say "must run as root"; exit 2
fi

if command -v sinfo >/dev/null && pgrep -x slurmctld >/dev/null && pgrep -x slurmd >/dev/null \
    && node_ready; then
    say "already running"; exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    # exit 3: could not install (tests skip on it; every other failure is an error)
    timeout 300 apt-get update -qq || exit 3
    timeout 900 apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
        || exit 3
fi

# munge: a key readable by the munge user only, then the daemon as that user
if [[ ! -s /etc/munge/munge.key ]]; then
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
chmod 0755 /run/munge
if ! pgrep -x munged >/dev/null; then
    timeout 30 runuser -u munge -- /usr/sbin/munged
fi
for _ in $(seq 20); do
    timeout 5 munge -n </dev/null 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1 && break
    sleep 0.5
done
if ! timeout 5 munge -n </dev/null | timeout 5 unmunge >/dev/null; then
    say "munge does not work"; exit 1
fi

if [[ -e $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
    say "$CONF exists and was not written by this script; not touching it"; exit 1
fi
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$LOGS"
cat >"$CONF" <<EOF
$MARK
ClusterName=quantbench
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# finished jobs stay visible to squeue for 10 min: the plugin polls squeue, not sacct
MinJobAge=600
KillWait=5
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=/run/quantbench-slurmctld.pid
SlurmdPidFile=/run/quantbench-slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

pgrep -x slurmctld >/dev/null || timeout 30 slurmctld
pgrep -x slurmd >/dev/null || timeout 30 slurmd -N localhost

for _ in $(seq "$WAIT_S"); do
    if node_ready; then
        say "node localhost is up ($cpus CPUs, $mem_mb MB)"; exit 0
    fi
    # a node left down/drained by an earlier run comes back once asked
    timeout 10 scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
    sleep 1
done
say "node not idle after ${WAIT_S}s:"
timeout 10 sinfo -N -l >&2 || true
tail -n 20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
exit 1
