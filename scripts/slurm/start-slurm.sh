#!/usr/bin/env bash
# start-slurm.sh -- bring up a REAL single-node SLURM 22.05 cluster (with accounting) on this
# machine: munged, mariadbd, slurmdbd, slurmctld, slurmd, plus fake GPUs as GRES.
#
# Why it is in mimdet-ablate: the project submits the MIMDet ablation runs to SLURM through
# submitit, and tests/test_slurm_cluster.py checks that path end to end (sbatch, job arrays,
# --gpus-per-node, afterok dependencies, failures, scancel) against a real scheduler. The
# pytest fixture in tests/slurm_cluster.py runs this script (as root) when no cluster is up,
# and scripts/slurm/stop-slurm.sh when the session ends. It can also be run by hand:
#
#     sudo scripts/slurm/start-slurm.sh     # then: pytest -m slurm
#     sudo scripts/slurm/stop-slurm.sh
#
# Idempotent: if everything is already up it returns in well under a second (also as non-root).
# Installs the Debian packages itself (apt-get, root) when they are missing.
# Daemons are started directly (no systemd); their PIDs are recorded in
# $SLURM_BASE/run/<daemon>.pid so that stop-slurm.sh can stop exactly them.
# Config goes to /etc/slurm (so sbatch/sacct need no SLURM_CONF); logs to $SLURM_BASE/log.
#
# Environment (all optional):
#   SLURM_BASE           state/log/pid directory     (default /var/tmp/slurm-local)
#   WITH_DBD             1 = accounting via slurmdbd+mariadb (default 1; needed by
#                        submitit: without sacct, job.result() hangs on cancelled jobs)
#   SLURM_CLUSTER_NAME   cluster name                (default localcluster)
#   SLURM_PARTITION      partition name              (default debug)
#   SLURM_GPUS           fake GPUs on the node (GRES gpu backed by plain files) so that
#                        --gpus-per-node jobs schedule and show gres/gpu in sacct; the jobs
#                        still run on the CPU. 0 = no GRES (default 2)
#   SLURM_DB_PORT        mariadb TCP port on 127.0.0.1 (default 13306)
#   SLURM_DB_PASS        password of the 'slurm' db user (default slurmdbpass)
#   SLURM_MEM_MB         RealMemory of the node in MB (default: MemTotal - 10%, max 2 GiB margin)
#   SLURM_DEF_MEM_PER_CPU  DefMemPerCPU in MB        (default 1024)
#   SLURM_START_TIMEOUT  seconds to wait for readiness (default 120)
#   SLURM_NO_INSTALL     1 = never run apt-get; fail if packages are missing
set -euo pipefail

SLURM_BASE=${SLURM_BASE:-/var/tmp/slurm-local}
WITH_DBD=${WITH_DBD:-1}
SLURM_CLUSTER_NAME=${SLURM_CLUSTER_NAME:-localcluster}
SLURM_PARTITION=${SLURM_PARTITION:-debug}
SLURM_GPUS=${SLURM_GPUS:-2}
SLURM_DB_PORT=${SLURM_DB_PORT:-13306}
SLURM_DB_PASS=${SLURM_DB_PASS:-slurmdbpass}
SLURM_DEF_MEM_PER_CPU=${SLURM_DEF_MEM_PER_CPU:-1024}
SLURM_START_TIMEOUT=${SLURM_START_TIMEOUT:-120}
SLURM_NO_INSTALL=${SLURM_NO_INSTALL:-0}
CONF_DIR=/etc/slurm
RUN_DIR=$SLURM_BASE/run
LOG_DIR=$SLURM_BASE/log
DB_DIR=$SLURM_BASE/mysql
DB_RUN=$SLURM_BASE/mysql-run
DB_SOCK=$DB_RUN/mysqld.sock
# The cluster name is lower-cased by slurm; keep it that way to compare.
SLURM_CLUSTER_NAME=$(printf '%s' "$SLURM_CLUSTER_NAME" | tr '[:upper:]' '[:lower:]')
NODE=$(hostname -s)
T0=$(date +%s.%N)

die()  { printf '[start-slurm] ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }
log()  { printf '[start-slurm %5ss] %s\n' "$(elapsed)" "$*" >&2; }

show_logs() {
    for f in "$@"; do
        [ -f "$f" ] || continue
        echo "----- last lines of $f -----" >&2
        tail -n 25 "$f" >&2 || true
    done
}

# pid_alive NAME -> prints pid and returns 0 if $RUN_DIR/NAME.pid names a live NAME process
pid_alive() {
    local name=$1 pid comm
    [ -r "$RUN_DIR/$name.pid" ] || return 1
    pid=$(tr -dc '0-9' < "$RUN_DIR/$name.pid")
    [ -n "$pid" ] || return 1
    [ -d "/proc/$pid" ] || return 1   # (kill -0 fails with EPERM for non-root callers)
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    [ "$comm" = "$name" ] || return 1
    # a zombie (exited, not yet reaped) is not alive
    grep -qE '^State:[[:space:]]*[ZX]' "/proc/$pid/status" 2>/dev/null && return 1
    echo "$pid"
}

daemons() {
    if [ "$WITH_DBD" = 1 ]; then echo munged mariadbd slurmdbd slurmctld slurmd
    else echo munged slurmctld slurmd; fi
}

node_state() { sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1; }

cluster_registered() {
    # The cluster row exists AND slurmctld has registered (ControlHost filled in).
    local out
    out=$(sacctmgr -n -P show cluster "$SLURM_CLUSTER_NAME" format=Cluster,ControlHost 2>/dev/null) || return 1
    case "$out" in "$SLURM_CLUSTER_NAME|"?*) return 0 ;; *) return 1 ;; esac
}

all_up() {
    local d
    for d in $(daemons); do
        if [ "$d" = munged ] && [ ! -e "$RUN_DIR/munged.pid" ] && munge_works; then continue; fi
        pid_alive "$d" >/dev/null || return 1
    done
    case "$(node_state)" in idle|mixed|allocated|completing) ;; *) return 1 ;; esac
    if [ "$WITH_DBD" = 1 ]; then cluster_registered || return 1; fi
    return 0
}

munge_works() { command -v munge >/dev/null && munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

wait_for() { # wait_for SECONDS DESCRIPTION CMD...
    local t=$1 what=$2; shift 2
    local end=$(( $(date +%s) + t ))
    until "$@"; do
        if [ "$(date +%s)" -ge "$end" ]; then return 1; fi
        sleep 0.3
    done
}

# ---------------------------------------------------------------- fast path
if command -v sinfo >/dev/null 2>&1 && [ -d "$RUN_DIR" ] && all_up; then
    log "already up (node $NODE: $(node_state)); nothing to do"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root to start the cluster (packages, /etc/slurm, daemons). Try: sudo $0"

# ---------------------------------------------------------------- packages
need_pkgs=()
command -v munged    >/dev/null || need_pkgs+=(munge)
command -v slurmctld >/dev/null || need_pkgs+=(slurmctld)
command -v slurmd    >/dev/null || need_pkgs+=(slurmd)
command -v sbatch    >/dev/null || need_pkgs+=(slurm-client)
if [ "$WITH_DBD" = 1 ]; then
    command -v slurmdbd >/dev/null || need_pkgs+=(slurmdbd)
    command -v mariadbd >/dev/null || need_pkgs+=(mariadb-server)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
    [ "$SLURM_NO_INSTALL" = 1 ] && die "missing packages: ${need_pkgs[*]} (SLURM_NO_INSTALL=1)"
    command -v apt-get >/dev/null || die "missing packages ${need_pkgs[*]} and no apt-get to install them"
    log "installing packages: ${need_pkgs[*]} (apt-get)"
    # Keep package maintainer scripts from starting daemons (we start them ourselves).
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; own_policy=1
    fi
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${need_pkgs[@]}" > "/tmp/start-slurm-apt.log" 2>&1
    }
    if ! apt_install; then
        log "apt-get install failed; running apt-get update and retrying"
        apt-get update -q > /tmp/start-slurm-apt-update.log 2>&1 || { [ $own_policy = 1 ] && rm -f /usr/sbin/policy-rc.d; tail -20 /tmp/start-slurm-apt-update.log >&2; die "apt-get update failed"; }
        if ! apt_install; then
            [ $own_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
            tail -30 /tmp/start-slurm-apt.log >&2
            die "apt-get install ${need_pkgs[*]} failed (full log: /tmp/start-slurm-apt.log)"
        fi
    fi
    [ $own_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    log "packages installed"
fi
id slurm >/dev/null 2>&1 || die "user 'slurm' does not exist (should come with the slurm packages)"
id munge >/dev/null 2>&1 || die "user 'munge' does not exist (should come with the munge package)"

# ---------------------------------------------------------------- directories
mkdir -p "$RUN_DIR" "$LOG_DIR" "$SLURM_BASE/state/ctld" "$SLURM_BASE/state/d" "$CONF_DIR"
chmod 755 "$SLURM_BASE" "$SLURM_BASE/state"
chown root:slurm "$RUN_DIR" "$LOG_DIR"; chmod 775 "$RUN_DIR" "$LOG_DIR"
chown slurm:slurm "$SLURM_BASE/state/ctld"; chmod 755 "$SLURM_BASE/state/ctld"
chmod 755 "$SLURM_BASE/state/d"
# slurm needs every parent directory to be traversable
p=$SLURM_BASE; while [ "$p" != / ]; do p=$(dirname "$p"); [ -x "$p" ] || die "$p not traversable"; done

# ---------------------------------------------------------------- slurm.conf
# Node hardware as slurmd sees it (Sockets/Cores/Threads must match or the node drains).
hw=$(slurmd -C 2>/dev/null | head -n1) || true
hwval() { printf '%s\n' "$hw" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
CPUS=$(hwval CPUs);               CPUS=${CPUS:-$(nproc)}
BOARDS=$(hwval Boards);           BOARDS=${BOARDS:-1}
SPB=$(hwval SocketsPerBoard);     SPB=${SPB:-1}
CPS=$(hwval CoresPerSocket);      CPS=${CPS:-$CPUS}
TPC=$(hwval ThreadsPerCore);      TPC=${TPC:-1}
MEM_TOTAL=$(awk '/^MemTotal:/{print int($2/1024)}' /proc/meminfo)
if [ -z "${SLURM_MEM_MB:-}" ]; then
    margin=$(( MEM_TOTAL / 10 )); [ $margin -gt 2048 ] && margin=2048
    SLURM_MEM_MB=$(( MEM_TOTAL - margin ))
fi

if [ "$WITH_DBD" = 1 ]; then
    ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
else
    ACCT="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

# Fake GPUs: GRES "gpu" with a count and no device files, so that --gpus-per-node requests are
# scheduled and accounted like on a GPU cluster (the jobs still run on the CPU).
case "$SLURM_GPUS" in ''|*[!0-9]*) die "SLURM_GPUS must be a number (got '$SLURM_GPUS')";; esac
if [ "$SLURM_GPUS" -gt 0 ]; then GRES_TYPES="GresTypes=gpu"; NODE_GRES=" Gres=gpu:$SLURM_GPUS"
    [ "$WITH_DBD" = 1 ] && GRES_TYPES="$GRES_TYPES
AccountingStorageTRES=gres/gpu"
else GRES_TYPES=""; NODE_GRES=""; fi

new_conf=$(cat <<EOF
# Generated by start-slurm.sh -- single-node test cluster. Do not edit by hand.
ClusterName=$SLURM_CLUSTER_NAME
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
# cred_expire also bounds how long a requeued job waits before it may run again (default 120 s)
AuthInfo=cred_expire=10
StateSaveLocation=$SLURM_BASE/state/ctld
SlurmdSpoolDir=$SLURM_BASE/state/d
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
# no cgroups in a sandbox/container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
PropagateResourceLimits=NONE
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$SLURM_DEF_MEM_PER_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
ReturnToService=2
SlurmdParameters=config_overrides
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=5
Waittime=0
MinJobAge=300
JobRequeue=1
$ACCT
JobCompType=jobcomp/none
$GRES_TYPES
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Boards=$BOARDS SocketsPerBoard=$SPB CoresPerSocket=$CPS ThreadsPerCore=$TPC RealMemory=$SLURM_MEM_MB$NODE_GRES State=UNKNOWN
PartitionName=$SLURM_PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)

write_if_changed() { # write_if_changed FILE CONTENT -> returns 0 if changed
    local f=$1 content=$2
    if [ -f "$f" ] && [ "$(cat "$f")" = "$content" ]; then return 1; fi
    if [ -f "$f" ] && ! grep -q 'Generated by start-slurm.sh' "$f"; then
        cp -p "$f" "$f.bak.$(date +%s)"; log "backed up existing $f"
    fi
    printf '%s\n' "$content" > "$f"
    return 0
}
conf_changed=0
write_if_changed "$CONF_DIR/slurm.conf" "$new_conf" && conf_changed=1
chmod 644 "$CONF_DIR/slurm.conf"
if [ "$SLURM_GPUS" -gt 0 ]; then
    # slurmd counts a GPU per device file: plain files stand in for /dev/nvidiaN
    mkdir -p "$SLURM_BASE/fake-gpu"
    for i in $(seq 0 $((SLURM_GPUS - 1))); do : > "$SLURM_BASE/fake-gpu/nvidia$i"; done
    gres_conf="# Generated by start-slurm.sh -- fake GPUs (plain files as device files)
AutoDetect=off
NodeName=$NODE Name=gpu File=$SLURM_BASE/fake-gpu/nvidia[0-$((SLURM_GPUS - 1))]"; else gres_conf="# Generated by start-slurm.sh -- no GRES"; fi
write_if_changed "$CONF_DIR/gres.conf" "$gres_conf" && conf_changed=1
chmod 644 "$CONF_DIR/gres.conf"

if [ "$WITH_DBD" = 1 ]; then
    dbd_conf=$(cat <<EOF
# Generated by start-slurm.sh -- must be mode 600 and owned by SlurmUser.
AuthType=auth/munge
DbdHost=$NODE
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=slurm
DebugLevel=info
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$RUN_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$SLURM_DB_PORT
StorageUser=slurm
StoragePass=$SLURM_DB_PASS
StorageLoc=slurm_acct_db
EOF
)
    write_if_changed "$CONF_DIR/slurmdbd.conf" "$dbd_conf" && conf_changed=1
    chown slurm:slurm "$CONF_DIR/slurmdbd.conf"; chmod 600 "$CONF_DIR/slurmdbd.conf"
fi
if [ $conf_changed = 1 ] && { pid_alive slurmctld >/dev/null || pid_alive slurmd >/dev/null; }; then
    log "WARNING: configuration changed while slurm daemons run; run stop-slurm.sh then start-slurm.sh to apply it"
fi

# ---------------------------------------------------------------- munged
if pid_alive munged >/dev/null; then
    log "munged already running (pid $(pid_alive munged))"
elif munge_works; then
    log "a munged not started by this script is already serving; using it (stop-slurm.sh will leave it alone)"
    rm -f "$RUN_DIR/munged.pid"
else
    install -d -o munge -g munge -m 700 /etc/munge
    install -d -o munge -g munge -m 711 /var/lib/munge
    install -d -o munge -g munge -m 700 /var/log/munge
    install -d -o munge -g munge -m 755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force
        else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
    fi
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
    rm -f /run/munge/munged.pid
    log "starting munged"
    # munged daemonizes itself and writes /run/munge/munged.pid
    setpriv --reuid=munge --regid=munge --init-groups -- /usr/sbin/munged --force \
        >>"$LOG_DIR/munged.start.log" 2>&1 </dev/null \
        || { show_logs "$LOG_DIR/munged.start.log" /var/log/munge/munged.log; die "munged failed to start"; }
    wait_for 15 "munged pid" test -s /run/munge/munged.pid || die "munged did not write /run/munge/munged.pid"
    cat /run/munge/munged.pid > "$RUN_DIR/munged.pid"; chmod 644 "$RUN_DIR/munged.pid"
    wait_for 15 "munge" munge_works || { show_logs /var/log/munge/munged.log; die "munge does not work"; }
    log "munged up (pid $(pid_alive munged))"
fi

# ---------------------------------------------------------------- mariadb
db_sql() { mariadb --no-defaults -S "$DB_SOCK" -u root "$@"; }
if [ "$WITH_DBD" = 1 ]; then
    if pid_alive mariadbd >/dev/null; then
        log "mariadbd already running (pid $(pid_alive mariadbd))"
    else
        if [ ! -d "$DB_DIR/mysql" ]; then
            log "initialising mariadb data dir $DB_DIR"
            install -d -o mysql -g mysql -m 750 "$DB_DIR"
            mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" \
                --auth-root-authentication-method=socket --skip-test-db \
                > "$LOG_DIR/mariadb-install-db.log" 2>&1 \
                || { show_logs "$LOG_DIR/mariadb-install-db.log"; die "mariadb-install-db failed"; }
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$SLURM_DB_PORT") 2>/dev/null; then
            die "port 127.0.0.1:$SLURM_DB_PORT is already in use (set SLURM_DB_PORT to another port)"
        fi
        log "starting mariadbd on 127.0.0.1:$SLURM_DB_PORT"
        # mariadbd runs as 'mysql': give it its own socket/pid dir and log file.
        install -d -o mysql -g mysql -m 755 "$DB_RUN"
        touch "$LOG_DIR/mariadbd.log"; chown mysql:mysql "$LOG_DIR/mariadbd.log"
        rm -f "$RUN_DIR/mariadbd.pid" "$DB_RUN/mariadbd.pid"
        # mariadbd stays in the foreground: detach it (setsid, background) and let it
        # write its own pid file, which is then copied to $RUN_DIR/mariadbd.pid.
        setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB_DIR" \
            --socket="$DB_SOCK" --pid-file="$DB_RUN/mariadbd.pid" \
            --port="$SLURM_DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
            --log-error="$LOG_DIR/mariadbd.log" \
            --innodb-buffer-pool-size=128M --innodb-log-file-size=64M \
            --innodb-lock-wait-timeout=900 --max-allowed-packet=64M \
            </dev/null >>"$LOG_DIR/mariadbd.out" 2>&1 &
        db_bg=$!
        db_ready() { kill -0 "$db_bg" 2>/dev/null || return 2; db_sql -e 'SELECT 1' >/dev/null 2>&1; }
        end=$(( $(date +%s) + 60 ))
        until db_ready; do
            if ! kill -0 "$db_bg" 2>/dev/null || [ "$(date +%s)" -ge "$end" ]; then
                show_logs "$LOG_DIR/mariadbd.log" "$LOG_DIR/mariadbd.out"; die "mariadbd did not come up"
            fi
            sleep 0.3
        done
        wait_for 10 "mariadb pid" test -s "$DB_RUN/mariadbd.pid" || die "mariadbd did not write its pid file"
        cat "$DB_RUN/mariadbd.pid" > "$RUN_DIR/mariadbd.pid"; chmod 644 "$RUN_DIR/mariadbd.pid"
        pid_alive mariadbd >/dev/null || die "mariadbd pid file does not name a live mariadbd"
        log "mariadbd up (pid $(pid_alive mariadbd))"
    fi
    db_sql <<EOF || die "could not create the slurm database user"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$SLURM_DB_PASS';
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$SLURM_DB_PASS';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$SLURM_DB_PASS';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$SLURM_DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF

    # ------------------------------------------------------------ slurmdbd
    if pid_alive slurmdbd >/dev/null; then
        log "slurmdbd already running (pid $(pid_alive slurmdbd))"
    else
        log "starting slurmdbd"
        rm -f "$RUN_DIR/slurmdbd.pid"
        /usr/sbin/slurmdbd </dev/null >>"$LOG_DIR/slurmdbd.start.log" 2>&1 \
            || { show_logs "$LOG_DIR/slurmdbd.start.log" "$LOG_DIR/slurmdbd.log"; die "slurmdbd failed to start"; }
        wait_for 60 "slurmdbd" sacctmgr -n -P list cluster format=Cluster >/dev/null 2>&1 \
            || { show_logs "$LOG_DIR/slurmdbd.log"; die "slurmdbd does not answer"; }
        wait_for 10 "slurmdbd pid" pid_alive slurmdbd >/dev/null || die "slurmdbd pid file missing"
        log "slurmdbd up (pid $(pid_alive slurmdbd))"
    fi
    if ! sacctmgr -n -P list cluster format=Cluster 2>/dev/null | grep -qx "$SLURM_CLUSTER_NAME"; then
        log "registering cluster $SLURM_CLUSTER_NAME in the accounting database"
        sacctmgr -i add cluster "$SLURM_CLUSTER_NAME" >/dev/null || die "sacctmgr add cluster failed"
    fi
fi

# ---------------------------------------------------------------- slurmctld
if pid_alive slurmctld >/dev/null; then
    log "slurmctld already running (pid $(pid_alive slurmctld))"
else
    log "starting slurmctld"
    rm -f "$RUN_DIR/slurmctld.pid"
    /usr/sbin/slurmctld </dev/null >>"$LOG_DIR/slurmctld.start.log" 2>&1 \
        || { show_logs "$LOG_DIR/slurmctld.start.log" "$LOG_DIR/slurmctld.log"; die "slurmctld failed to start"; }
    wait_for 60 "slurmctld" scontrol ping >/dev/null 2>&1 \
        || { show_logs "$LOG_DIR/slurmctld.log"; die "slurmctld does not answer (scontrol ping)"; }
    wait_for 10 "slurmctld pid" pid_alive slurmctld >/dev/null || die "slurmctld pid file missing"
    log "slurmctld up (pid $(pid_alive slurmctld))"
fi

# ---------------------------------------------------------------- slurmd
if pid_alive slurmd >/dev/null; then
    log "slurmd already running (pid $(pid_alive slurmd))"
else
    log "starting slurmd"
    rm -f "$RUN_DIR/slurmd.pid"
    /usr/sbin/slurmd -N "$NODE" </dev/null >>"$LOG_DIR/slurmd.start.log" 2>&1 \
        || { show_logs "$LOG_DIR/slurmd.start.log" "$LOG_DIR/slurmd.log"; die "slurmd failed to start"; }
    wait_for 10 "slurmd pid" pid_alive slurmd >/dev/null \
        || { show_logs "$LOG_DIR/slurmd.log"; die "slurmd did not stay up"; }
    log "slurmd up (pid $(pid_alive slurmd))"
fi

# ---------------------------------------------------------------- readiness
end=$(( $(date +%s) + SLURM_START_TIMEOUT ))
resumed=0
while :; do
    st=$(node_state || true)
    case "$st" in
        idle|mixed|allocated|completing)
            if [ "$WITH_DBD" != 1 ] || cluster_registered; then break; fi ;;
        drain*|drained|down*|fail*)
            # left over from an earlier run (e.g. "Kill task failed"); bring it back
            if [ $resumed = 0 ]; then
                log "node $NODE is '$st' ($(sinfo -h -n "$NODE" -o '%E' 2>/dev/null)); resuming it"
                scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
                resumed=1
            fi ;;
    esac
    if [ "$(date +%s)" -ge "$end" ]; then
        sinfo -N -l >&2 || true
        show_logs "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" "$LOG_DIR/slurmdbd.log"
        die "cluster not ready after ${SLURM_START_TIMEOUT}s (node state '$st')"
    fi
    sleep 0.5
done
log "cluster '$SLURM_CLUSTER_NAME' ready: node $NODE $(node_state), partition $SLURM_PARTITION, ${CPUS} CPUs, ${SLURM_MEM_MB} MB; accounting=$([ "$WITH_DBD" = 1 ] && echo slurmdbd || echo none)"
