#!/usr/bin/env bash
# stop-slurm.sh -- stop the single-node SLURM cluster started by scripts/slurm/start-slurm.sh.
#
# Why it is in mimdet-ablate: the pytest fixture in tests/slurm_cluster.py calls it at the end
# of a test session that started the cluster, so a test run leaves the machine as it found it.
#
# Stops exactly the PIDs recorded in $SLURM_BASE/run/<daemon>.pid (after checking
# that each PID still is that daemon), in the order slurmd, slurmctld, slurmdbd,
# mariadbd, munged, and waits for each to exit (SIGKILL after a grace period).
# Never kills by name. Idempotent: returns 0 when nothing is running.
#
# Environment (all optional):
#   SLURM_BASE          same as for start-slurm.sh (default /var/tmp/slurm-local)
#   SLURM_CANCEL_JOBS   1 = scancel all jobs first so no job steps outlive slurmd (default 1)
#   SLURM_STOP_TIMEOUT  seconds to wait for each daemon before SIGKILL (default 30)
#   SLURM_PURGE         1 = also delete $SLURM_BASE (job state, accounting db, logs) (default 0)
set -uo pipefail

SLURM_BASE=${SLURM_BASE:-/var/tmp/slurm-local}
SLURM_CANCEL_JOBS=${SLURM_CANCEL_JOBS:-1}
SLURM_STOP_TIMEOUT=${SLURM_STOP_TIMEOUT:-30}
SLURM_PURGE=${SLURM_PURGE:-0}
RUN_DIR=$SLURM_BASE/run
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
log() { printf '[stop-slurm %5ss] %s\n' "$(elapsed)" "$*" >&2; }

running() { # running PID NAME: alive, still NAME, and not a zombie waiting to be reaped
    local st
    [ -d "/proc/$1" ] || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)
    [ "$st" != Z ] && [ "$st" != X ]
}

pid_of() { # prints the pid if $RUN_DIR/NAME.pid names a live NAME process
    local name=$1 pid comm
    [ -r "$RUN_DIR/$name.pid" ] || return 1
    pid=$(tr -dc '0-9' < "$RUN_DIR/$name.pid")
    [ -n "$pid" ] || return 1
    running "$pid" "$name" || return 1
    echo "$pid"
}

if [ ! -d "$RUN_DIR" ]; then
    log "nothing to stop ($RUN_DIR does not exist)"
    [ "$SLURM_PURGE" = 1 ] && rm -rf "$SLURM_BASE"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    for name in slurmd slurmctld slurmdbd mariadbd munged; do
        if pid_of "$name" >/dev/null; then
            echo "[stop-slurm] ERROR: must run as root to stop the cluster ($name is running). Try: sudo $0" >&2
            exit 1
        fi
    done
fi

# Cancel jobs first: slurmstepd/job processes would otherwise outlive slurmd.
if [ "$SLURM_CANCEL_JOBS" = 1 ] && pid_of slurmctld >/dev/null && command -v squeue >/dev/null; then
    jobs=$(timeout 10 squeue -h -o '%A' 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null || true
        end=$(( $(date +%s) + 20 ))
        while [ -n "$(timeout 10 squeue -h -t all -o '%A %T' 2>/dev/null | grep -vE 'CANCELLED|COMPLETED|FAILED|TIMEOUT|PREEMPTED|NODE_FAIL|BOOT_FAIL|DEADLINE|OUT_OF_MEMORY')" ] \
              && [ "$(date +%s)" -lt "$end" ]; do sleep 0.5; done
    fi
fi

rc=0
for name in slurmd slurmctld slurmdbd mariadbd munged; do
    pid=$(pid_of "$name") || { rm -f "$RUN_DIR/$name.pid"; continue; }
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    end=$(( $(date +%s) + SLURM_STOP_TIMEOUT ))
    while running "$pid" "$name"; do
        if [ "$(date +%s)" -ge "$end" ]; then
            log "$name (pid $pid) still alive after ${SLURM_STOP_TIMEOUT}s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            if running "$pid" "$name"; then log "ERROR: could not kill $name (pid $pid)"; rc=1; fi
            break
        fi
        sleep 0.1
    done
    rm -f "$RUN_DIR/$name.pid"
done
[ "$rc" = 0 ] && rm -f "$RUN_DIR/munged.pid"

if [ "$SLURM_PURGE" = 1 ]; then
    log "removing $SLURM_BASE"
    rm -rf "$SLURM_BASE"
fi
log "stopped"
exit $rc
