#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost (Debian's slurm-wlm: munge, slurmctld, slurmd) for testing the
# workflow's SLURM execution: `cluster.sh start` installs the packages if they are missing (root, apt), writes
# slurm.conf into $GENSSL_SLURM_DIR (default /tmp/genssl-slurm), starts munged, slurmctld and slurmd, and waits
# until the node is idle; `cluster.sh stop` stops what start started, by the PID files in $GENSSL_SLURM_DIR (munged
# only if start started it); `cluster.sh env` prints the SLURM_CONF line to export.
# The node offers this machine's cores and memory in partition `debug`; there is no accounting database (the
# Snakemake executor checks jobs with squeue: profiles/slurm/localhost/config.v8+.yaml). The configuration is
# linked to /etc/slurm/slurm.conf, where job steps (srun inside sbatch) look for it; an existing file there that
# is not this script's is left alone (then export SLURM_CONF yourself).
set -euo pipefail
STATE=${GENSSL_SLURM_DIR:-/tmp/genssl-slurm}
CONF=$STATE/slurm.conf
NODE=localhost

install() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then return; fi
    echo "installing slurm-wlm and munge (apt)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
}

configure() {
    mkdir -p "$STATE"/{ctld,d,log}
    local cpus memory
    cpus=$(nproc)
    memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat > "$CONF" <<CONF
ClusterName=genssl
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

start() {
    install
    configure
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
        chmod 400 /etc/munge/munge.key
    fi
    chown -R munge:munge /etc/munge 2>/dev/null || true
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
    if ! pgrep -x munged >/dev/null; then
        su -s /bin/sh munge -c /usr/sbin/munged 2>/dev/null || /usr/sbin/munged --force
        pgrep -o -x munged > "$STATE/munged.pid"  # ours: stop stops it
    fi
    mkdir -p /etc/slurm
    if [ ! -e /etc/slurm/slurm.conf ] || [ "$(readlink /etc/slurm/slurm.conf)" = "$CONF" ]; then
        ln -sf "$CONF" /etc/slurm/slurm.conf
    fi
    export SLURM_CONF=$CONF
    pgrep -x slurmctld >/dev/null || slurmctld -f "$CONF"
    pgrep -x slurmd >/dev/null || slurmd -f "$CONF" -N "$NODE"
    for _ in $(seq 60); do
        if sinfo -h -N -o %t 2>/dev/null | grep -qx idle; then
            echo "SLURM is up: partition debug, node $NODE; export SLURM_CONF=$CONF" >&2
            return
        fi
        sleep 1
    done
    echo "SLURM did not come up; see $STATE/log/" >&2
    exit 1
}

# Stop the daemon whose PID is in file $1 (if it runs), wait for it to end, remove the file.
stop_pid_file() {
    local file=$1 pid
    [ -s "$file" ] || return 0
    pid=$(cat "$file")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$file"
}

stop() {
    stop_pid_file "$STATE/slurmd.pid"
    stop_pid_file "$STATE/slurmctld.pid"
    stop_pid_file "$STATE/munged.pid"
    if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$CONF" ]; then rm -f /etc/slurm/slurm.conf; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
