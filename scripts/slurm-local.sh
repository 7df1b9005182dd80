#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, from Debian's slurm-wlm and munge packages:
# munged, slurmctld and slurmd run as root from a state directory, without systemd
# and without cgroups (proctrack/linuxproc, task/none), on 127.0.0.1 only.
#
#   scripts/slurm-local.sh start     # installs the packages if missing, starts the daemons
#   eval "$(scripts/slurm-local.sh env)"   # SLURM_CONF for sbatch, squeue, scancel, ...
#   scripts/slurm-local.sh status
#   scripts/slurm-local.sh stop      # stops the daemons this script started (by their pid files)
#
# SLURM_LOCAL_DIR (default .build/slurm-local) holds slurm.conf, the munge key and
# socket, the daemons' logs, pid files and state. Ports are chosen free at start.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=${SLURM_LOCAL_DIR:-$PWD/.build/slurm-local}
CONF=$STATE/slurm.conf
NODE=$(hostname -s)

log() { echo "slurm-local: $*" >&2; }
die() { log "error: $*"; exit 1; }

install_packages() {
    local missing=()
    for package in slurm-wlm munge; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # The packages' init scripts would start daemons with the system's config: policy-rc.d
    # usually forbids that in containers; either way this script starts its own.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A TCP port nobody listens on, from the kernel's ephemeral range.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Waits up to $2 seconds for the command $1 to succeed.
wait_for() {
    local deadline=$((SECONDS + $2))
    until eval "$1" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.3
    done
}

write_config() {
    local cpus memory ctld_port d_port
    cpus=$(nproc)
    # Leave the system a quarter of the memory (at least 512 MB) so --mem requests are real.
    memory=$(awk '/MemTotal/ { m = int($2 / 1024); r = int(m / 4); if (r < 512) r = 512; print m - r }' /proc/meminfo)
    ctld_port=$(free_port)
    d_port=$(free_port)
    while [ "$d_port" = "$ctld_port" ]; do d_port=$(free_port); done
    cat > "$CONF" <<EOF
# Written by scripts/slurm-local.sh: a one-node cluster on 127.0.0.1.
ClusterName=cria-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# No cgroups: processes are tracked through /proc, tasks are not confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
# Cancelled or failed array tasks may be requeued (scontrol requeue) with their array job id.
JobRequeue=1
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    # slurmd starts every job as its submitting user, which only root can do.
    [ "$(id -u)" -eq 0 ] || die "run as root (slurmd must be able to start jobs as any user)"
    install_packages
    if alive "$STATE/slurmctld.pid" || alive "$STATE/slurmd.pid" || alive "$STATE/munge/munged.pid"; then
        die "already running from $STATE (scripts/slurm-local.sh stop first)"
    fi
    rm -rf "$STATE"
    mkdir -p "$STATE/ctld" "$STATE/d" "$STATE/munge"
    # munged refuses group- or world-accessible key and socket directories.
    chmod 700 "$STATE" "$STATE/munge"
    dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$STATE/munge/munge.key"
    write_config

    munged --force --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
        --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed" \
        || die "munged did not start: $(tail -3 "$STATE/munge/munged.log" 2>/dev/null)"
    wait_for "munge --socket='$STATE/munge/munge.socket' -n </dev/null | unmunge --socket='$STATE/munge/munge.socket'" 10 \
        || die "munge does not answer on $STATE/munge/munge.socket"

    export SLURM_CONF=$CONF
    slurmctld -f "$CONF" || die "slurmctld did not start: $(tail -5 "$STATE/slurmctld.log" 2>/dev/null)"
    wait_for "scontrol ping | grep -q UP" 30 || die "slurmctld does not answer: $(tail -5 "$STATE/slurmctld.log")"
    slurmd -f "$CONF" -N "$NODE" || die "slurmd did not start: $(tail -5 "$STATE/slurmd.log" 2>/dev/null)"
    wait_for "sinfo -h -N -o %t | grep -Eq '^(idle|mix|alloc)'" 30 \
        || die "node $NODE is not idle ($(sinfo -h -N -o '%t %E' 2>&1)): $(tail -5 "$STATE/slurmd.log")"
    log "up: node $NODE, $(nproc) CPUs, SLURM_CONF=$CONF"
}

stop() {
    # Only the daemons this script started, by their pid files; slurmd first, so no job outlives it.
    local pidfile pid
    for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$STATE/munge/munged.pid"; do
        alive "$pidfile" || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$(basename "$pidfile" .pid) ($pid) ignored SIGTERM for 10s; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    log "stopped ($STATE)"
}

status() {
    local name
    for name in munge/munged slurmctld slurmd; do
        if alive "$STATE/$name.pid"; then echo "$(basename $name): running ($(cat "$STATE/$name.pid"))"; else echo "$(basename $name): stopped"; fi
    done
    if alive "$STATE/slurmctld.pid"; then SLURM_CONF=$CONF sinfo; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
