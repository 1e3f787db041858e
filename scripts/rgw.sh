#!/usr/bin/env bash
# A single-node Ceph RADOS Gateway on loopback, for tests: a real S3 server.
#
#   scripts/rgw.sh start DIR MON_PORT RGW_PORT   start it with every file in DIR; prints
#                                                 endpoint=, access_key=, secret_key= lines
#                                                 (RGW_ACCESS_KEY, RGW_SECRET_KEY: those keys,
#                                                 else random ones)
#   scripts/rgw.sh start DIR MON_PORT RGW_PORT OWNER
#                                                 also stop them and remove DIR once process
#                                                 OWNER (the test run) has ended, however
#   scripts/rgw.sh stop DIR                       stop the daemons it started, by their PIDs
#
# One mon (msgr v2, cephx), one OSD on memstore (in RAM), radosgw on beast. The settings that
# keep start-up near 2.5 s and requests fast are in ../shared/notes/s3-test-server.md: paxos
# propose interval 0.05, the seven RGW pools made in one batch before radosgw starts, and
# tcp_nodelay=1. Logging at level 0 (in the log and in memory), 32 request threads (not 512) and
# no lifecycle or resharding threads: measured on 800 PUTs and GETs, the gateway took about 30%
# less CPU a request, which the S3 crash trials (a restarted gateway each kill) spend most of.
# One messenger thread a daemon and one OSD shard took 5 to 10% off the gateway's and OSD's.
# Needs Debian's radosgw ceph-mon ceph-osd ceph-common.
set -Eeuo pipefail
trap 'echo "rgw.sh: line $LINENO failed (exit $?): $BASH_COMMAND" >&2' ERR

usage() {
  echo "usage: $0 start DIR MON_PORT RGW_PORT [OWNER] | stop DIR" >&2
  exit 2
}

# Whether PID is still one of this cluster's daemons. The pids file also lists gateways that
# tests killed long ago, and PIDs wrap (pid_max is 32768 here): a stale one may now be another
# test's radosgw.
ours() {
  local pid=$1 conf=$2 cmdline
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ "$cmdline" == *"--conf $conf "* ]]
}

stop() {
  local dir=$1 pid live=()
  [[ -f "$dir/pids" ]] || return 0
  dir=$(cd "$dir" && pwd)
  while read -r pid; do
    ours "$pid" "$dir/ceph.conf" && live+=("$pid")
  done <"$dir/pids"
  # The cluster lives in RAM for one test run: nothing to shut down gracefully.
  for pid in "${live[@]}"; do
    kill -9 "$pid" 2>/dev/null || true
  done
  for pid in "${live[@]}"; do
    while [[ -e /proc/$pid && ! $(cat "/proc/$pid/stat" 2>/dev/null) =~ ^[0-9]+\ \(.*\)\ Z ]]; do
      sleep 0.05
    done
  done
  rm -f "$dir/pids"
}

# Field 22 of /proc/PID/stat, when the process started: with the PID, it names one process
# (PIDs wrap).
started() {
  local stat fields
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  read -ra fields <<<"$stat"
  echo "${fields[19]}"
}

# Stops the cluster in DIR and removes DIR once process PID, which started at START, is gone:
# a test run killed with SIGKILL leaves no daemon behind.
watch() {
  local pid=$1 start=$2 dir=$3
  while [[ $(started "$pid") == "$start" ]]; do
    sleep 1
  done
  stop "$dir"
  # Daemons the pids file does not list (removed with DIR by someone else): by their command
  # line.
  local proc
  for proc in /proc/[0-9]*; do
    if ours "${proc#/proc/}" "$dir/ceph.conf"; then kill -9 "${proc#/proc/}" 2>/dev/null || true; fi
  done
  rm -rf "$dir"
}

# Waits up to 120 s for a command to succeed (a loaded machine starts Ceph slowly), and no
# longer once the daemon it waits for (NAME, PID, its output in OUT, its log in LOG) has exited:
# a port in use, say. A daemon that aborts may exit before its log thread wrote why.
wait_for() {
  local name=$1 pid=$2 out=$3 log=$4 why
  shift 4
  for _ in $(seq 1200); do
    "$@" >/dev/null 2>&1 && return 0
    # radosgw that cannot bind logs this and should exit, but may crash on its way out and
    # hang (seen: "corrupted size vs. prev_size", then a segfault in another thread).
    if grep -q "ERROR: failed initializing frontend" "$out" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      why=$(grep -h -m 1 -iE 'error|fail' "$out" "$log" 2>/dev/null | head -n 1 || true)
      echo "rgw.sh: $name exited: ${why:-its log gives no reason (see $log)}" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "rgw.sh: timed out waiting for: $*" >&2
  exit 1
}

start() {
  local dir=$1 mon_port=$2 rgw_port=$3
  for tool in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool ceph; do
    if ! command -v "$tool" >/dev/null; then
      echo "rgw.sh: $tool is not installed: apt-get install radosgw ceph-mon ceph-osd ceph-common" >&2
      exit 3
    fi
  done
  mkdir -p "$dir/mon" "$dir/osd" "$dir/rgw" "$dir/run" "$dir/log"
  dir=$(cd "$dir" && pwd)
  local fsid conf="$dir/ceph.conf"
  fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
ms bind msgr1 = false
ms bind msgr2 = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon pg warn min per osd = 0
paxos propose interval = 0.05
osd crush chooseleaf type = 0
debug ms = 0/0
debug monc = 0/0
debug auth = 0/0
debug objecter = 0/0
debug rados = 0/0
debug osd = 0/0
debug memstore = 0/0
debug filestore = 0/0
debug bluestore = 0/0
debug rgw = 0/0
debug rgw sync = 0/0
debug civetweb = 0/0
debug asok = 0/0
debug finisher = 0/0
debug throttle = 0/0
debug context = 0/0
debug perfcounter = 0/0
debug optracker = 0/0
debug heartbeatmap = 0/0
ms async op threads = 1
osd op num shards = 1
osd op num threads per shard = 2
[mon.a]
mon data = $dir/mon
[osd.0]
osd data = $dir/osd
keyring = $dir/osd/keyring
osd objectstore = memstore
memstore device bytes = 1073741824
osd max object name len = 460
osd max object namespace len = 64
[client.rgw.0]
keyring = $dir/rgw/keyring
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw dns name = localhost
rgw gc obj min wait = 10
rgw gc processor period = 10
rgw thread pool size = 32
rgw enable lc threads = false
rgw dynamic resharding = false
EOF
  local c=(--conf "$conf")
  ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$dir/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
    --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
  ceph-mon "${c[@]}" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring"
  ceph-mon "${c[@]}" -f -i a >"$dir/log/mon.out" 2>&1 &
  echo $! >>"$dir/pids"
  wait_for ceph-mon $! "$dir/log/mon.out" "$dir/log/mon.a.log" ceph "${c[@]}" --connect-timeout 2 mon stat

  local osd_uuid
  osd_uuid=$(cat /proc/sys/kernel/random/uuid)
  ceph-authtool --create-keyring "$dir/osd/keyring" --gen-key -n osd.0 >/dev/null
  ceph "${c[@]}" auth add osd.0 osd 'allow *' mon 'allow profile osd' mgr 'allow profile osd' \
    -i "$dir/osd/keyring" >/dev/null
  ceph "${c[@]}" osd new "$osd_uuid" 0 >/dev/null
  ceph-osd "${c[@]}" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1
  ceph-osd "${c[@]}" -f -i 0 >"$dir/log/osd.out" 2>&1 &
  echo $! >>"$dir/pids"

  ceph "${c[@]}" auth get-or-create client.rgw.0 mon 'allow rw' osd 'allow rwx' \
    -o "$dir/rgw/keyring"
  # The pools radosgw would otherwise create one at a time, each stalling a first request.
  local pool batch=()
  for pool in .rgw.root default.rgw.control default.rgw.meta default.rgw.log \
    default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
    ceph "${c[@]}" osd pool create "$pool" 8 8 >/dev/null 2>&1 &
    batch+=($!)
  done
  wait "${batch[@]}"
  batch=()
  for pool in .rgw.root default.rgw.control default.rgw.meta default.rgw.log \
    default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
    ceph "${c[@]}" osd pool application enable "$pool" rgw >/dev/null 2>&1 &
    batch+=($!)
  done
  wait "${batch[@]}"

  radosgw "${c[@]}" -f -n client.rgw.0 >"$dir/log/rgw.out" 2>&1 &
  echo $! >>"$dir/pids"
  wait_for radosgw $! "$dir/log/rgw.out" "$dir/log/client.rgw.0.log" curl -sf -m 2 -o /dev/null "http://127.0.0.1:$rgw_port/"

  local access secret
  access=${RGW_ACCESS_KEY:-$(head -c 10 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  secret=${RGW_SECRET_KEY:-$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  radosgw-admin "${c[@]}" user create --uid=test --display-name=test \
    --access-key="$access" --secret-key="$secret" >/dev/null
  echo "endpoint=http://127.0.0.1:$rgw_port"
  echo "access_key=$access"
  echo "secret_key=$secret"
}

case "${1:-}" in
start)
  [[ $# == 4 || $# == 5 ]] || usage
  start "$2" "$3" "$4"
  if [[ $# == 5 ]]; then
    owner_start=$(started "$5")
    [[ -n "$owner_start" ]] || { stop "$2"; echo "rgw.sh: process $5 is not running" >&2; exit 1; }
    # Its own session, and no descriptor of ours: the caller waits for our output to end.
    setsid "$0" watch "$5" "$owner_start" "$(cd "$2" && pwd)" </dev/null >/dev/null 2>&1 &
  fi
  ;;
watch)
  [[ $# == 4 ]] || usage
  watch "$2" "$3" "$4"
  ;;
stop)
  [[ $# == 2 ]] || usage
  stop "$2"
  ;;
*) usage ;;
esac
