#!/usr/bin/env bash
# Steady-state MySQL writes per host per minute: N simulated hosts against a server on MariaDB,
# counters read from MariaDB's per-user statistics (userstat) for the server's own user, so
# other clients of the same MariaDB do not count.
set -euo pipefail
N=${N:-1000}
BIN=${BIN:-target/debug}
PORT=${PORT:-8643}
DATA=$(mktemp -d)
q() { mysql -uroot -h127.0.0.1 -N -e "$1"; }
q "DROP DATABASE IF EXISTS flotilla_bench; CREATE DATABASE flotilla_bench CHARACTER SET utf8mb4;
   CREATE USER IF NOT EXISTS 'flotilla_bench'@'%' IDENTIFIED BY 'bench';
   CREATE USER IF NOT EXISTS 'flotilla_bench'@'localhost' IDENTIFIED BY 'bench';
   GRANT ALL ON flotilla_bench.* TO 'flotilla_bench'@'%'; GRANT ALL ON flotilla_bench.* TO 'flotilla_bench'@'localhost';
   SET GLOBAL userstat = 1; FLUSH USER_STATISTICS; FLUSH TABLE_STATISTICS;"
"$BIN/flotilla" serve --listen 127.0.0.1:$PORT --data-dir "$DATA" --enroll-secret bench \
  --mysql-url mysql://flotilla_bench:bench@127.0.0.1:3306/flotilla_bench --log-level warn >/dev/null &
SERVER=$!
sleep 5
"$BIN/flotilla-loadtest" --server https://localhost:$PORT --ca "$DATA/tls/ca.pem" --enroll-secret bench \
  --hosts $N --start-period 20s --duration 230s >/tmp/mysql-writes-loadtest.txt 2>&1 &
LOADTEST=$!
snap() { q "SELECT UPDATE_COMMANDS, ROWS_UPDATED, ROWS_INSERTED, COMMIT_TRANSACTIONS, SELECT_COMMANDS FROM information_schema.USER_STATISTICS WHERE USER = 'flotilla_bench'"; }
status() { q "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_update','Com_update_multi','Com_insert','Innodb_rows_updated')" | tr '\n' ' '; }
sleep 90          # enrollment, first detail round and first minute of last-seen writes are over
A=$(snap); GA=$(status); T0=$(date +%s)
sleep 120
B=$(snap); GB=$(status); T1=$(date +%s)
wait $LOADTEST || true
kill -TERM $SERVER; wait $SERVER || true
q "SET GLOBAL userstat = 0"
echo "hosts=$N window=$((T1-T0))s"
echo "before: $A"; echo "after:  $B"
echo "global before: $GA"; echo "global after:  $GB"
read -r u1 r1 i1 c1 s1 <<<"$A"; read -r u2 r2 i2 c2 s2 <<<"$B"
mins=$(echo "($T1-$T0)/60" | bc -l)
printf 'update statements: %d (%.4f per host per minute)\n' $((u2-u1)) "$(echo "($u2-$u1)/$N/$mins" | bc -l)"
printf 'rows updated:      %d (%.3f per host per minute)\n' $((r2-r1)) "$(echo "($r2-$r1)/$N/$mins" | bc -l)"
printf 'rows inserted:     %d\n' $((i2-i1))
printf 'commits:           %d\n' $((c2-c1))
tail -15 /tmp/mysql-writes-loadtest.txt
q "DROP DATABASE flotilla_bench"
