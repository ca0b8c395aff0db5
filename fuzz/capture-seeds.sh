#!/usr/bin/env bash
# Capture real seed inputs for the fuzz corpora from the local services:
#   pgoutput: each `pg_logical_slot_get_binary_changes` call is one decoding session (it re-sends
#             its Relation messages), written as one seed of length-prefixed messages;
#   binlog:   the events of each scenario, read back with `mariadb-binlog --raw` and cut into
#             one seed per transaction group, preceded by the file's format description;
#   config:   the files in configs/.
# Usage: fuzz/capture-seeds.sh   (needs CDC_TEST_PG_URL and CDC_TEST_MYSQL_URL:
#        eval "$(scripts/services.sh env)")
set -euo pipefail
cd "$(dirname "$0")"
CORPUS=corpus
mkdir -p "$CORPUS"/{pgoutput,binlog,jsonb,config}
SUFFIX="fuzzseed_$$"

# ---- config -----------------------------------------------------------------------------
for f in ../configs/*.yaml; do cp "$f" "$CORPUS/config/seed-$(basename "$f" .yaml)"; done

# ---- pgoutput ---------------------------------------------------------------------------
PG="${CDC_TEST_PG_URL:?set it with: eval \"\$(scripts/services.sh env)\"}"
DB="$SUFFIX"
psql "$PG" -qAtc "create database $DB"
PGDB="${PG%/*}/$DB"
cleanup_pg() {
    psql "$PGDB" -qAtc "select pg_drop_replication_slot('$SUFFIX')" >/dev/null 2>&1 || true
    psql "$PG" -qAtc "drop database if exists $DB" >/dev/null 2>&1 || true
}
trap cleanup_pg EXIT
psql "$PGDB" -qAt <<SQL
create extension if not exists hstore;
create type mood as enum ('sad', 'ok', 'happy');
create table t (id int primary key, name text, price numeric(10,2), at timestamptz, d date,
  doc jsonb, tags text[], b bytea, f float8, r real, flag bool, m mood, h hstore, big text,
  bits bit varying(12), iv interval, u uuid);
create table k (a int, b text);
alter table k replica identity full;
create publication $SUFFIX for table t, k;
select 1 from pg_create_logical_replication_slot('$SUFFIX', 'pgoutput');
SQL
pg_seed() { # name, SQL
    psql "$PGDB" -qAt -c "$2" >/dev/null
    psql "$PGDB" -qAt -c "select encode(data, 'hex') from pg_logical_slot_get_binary_changes(
        '$SUFFIX', null, null, 'proto_version', '1', 'publication_names', '$SUFFIX',
        'messages', 'true')" | python3 -c '
import sys, struct
out = open(sys.argv[1], "wb")
for line in sys.stdin:
    m = bytes.fromhex(line.strip())
    out.write(struct.pack(">I", len(m)) + m)
' "$CORPUS/pgoutput/seed-$1"
}
pg_seed insert "insert into t values (1, 'a''b', 12.50, '2024-02-29 13:14:15.123456+01', '2024-02-29',
  '{\"a\": [1, 2.5, null, true]}', '{x,\"y z\",NULL}', '\\x00ff10', 1.5, -0.25, true, 'happy',
  'k=>v, n=>NULL', repeat('x', 300), B'101', '1 day 02:03:04', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
  (2, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null)"
pg_seed update "begin; update t set name = 'n2', price = -0.01 where id = 1; update t set id = 3 where id = 2; commit"
pg_seed toast "update t set name = 'n3' where id = 1"
pg_seed delete "delete from t where id = 3"
pg_seed full_identity "insert into k values (1, 'one'), (2, null); update k set b = 'uno' where a = 1; delete from k where a = 2"
pg_seed truncate "truncate k, t"
pg_seed message "select pg_logical_emit_message(true, 'fuzz', 'in a transaction'); select pg_logical_emit_message(false, 'fuzz', '\\x00ff'::bytea)"
pg_seed ddl "alter table k add column c int default 7; insert into k values (3, 'three', 3)"

# ---- binlog -----------------------------------------------------------------------------
MY="${CDC_TEST_MYSQL_URL:?}"
my_userinfo="${MY#mysql://}"; my_hostport="${my_userinfo#*@}"; my_userinfo="${my_userinfo%@*}"
MY_ARGS=(-h "${my_hostport%:*}" -P "${my_hostport##*:}" -u "${my_userinfo%:*}" -p"${my_userinfo#*:}")
my() { mariadb "${MY_ARGS[@]}" -N -e "$1"; }
cleanup_my() { my "drop database if exists $SUFFIX" >/dev/null 2>&1 || true; }
trap 'cleanup_pg; cleanup_my' EXIT
read -r FILE START < <(my "show master status" | awk '{print $1, $2}')
my "create database $SUFFIX"
my "use $SUFFIX;
create table t (id int unsigned primary key, name varchar(20), price decimal(10,2), at datetime(3),
  ts timestamp(6) null, d date, tm time(2), y year, doc json, b blob, bin binary(4), e enum('x','y'),
  s set('a','b','c'), bits bit(12), f float, g double, big bigint, tiny tinyint, med mediumint,
  ch char(3), txt text, v varbinary(10), pt point);
insert into t values (1, 'a', 12.50, '2024-02-29 13:14:15.123', '2024-02-29 13:14:15.654321',
  '2024-02-29', '-12:34:56.78', 2024, '{\"a\": [1, 2.5, null, true, \"s\"], \"b\": {}}', 'blob',
  'ab', 'y', 'a,c', b'101', 1.5, -2.25, -9007199254740993, -128, 8388607, 'xyz', 'text',
  0x00ff, ST_GeomFromText('POINT(1 2)')),
  (2, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
  null, null, null, null, null, null, null);
update t set name = 'b', doc = json_set(doc, '\$.a', 'c') where id = 1;
delete from t where id = 2;
create table k (a int, b text);
insert into k values (1, 'no key');
xa start 'fz'; insert into k values (2, 'xa'); xa end 'fz'; xa prepare 'fz'; xa commit 'fz';
alter table k add column c int first;
insert into k values (9, 3, 'after ddl');
truncate k;"
my "flush binary logs"
RAW="$(mktemp -d)"
mariadb-binlog "${MY_ARGS[@]}" --read-from-remote-server --raw --result-file="$RAW/" "$FILE"
python3 - "$RAW/$FILE" "$START" "$CORPUS/binlog" <<'PY'
import sys, struct
data = open(sys.argv[1], "rb").read()
start, outdir = int(sys.argv[2]), sys.argv[3]
assert data[:4] == b"\xfebin"
events, at = [], 4
while at + 19 <= len(data):
    t = data[at + 4]
    n = struct.unpack_from("<I", data, at + 9)[0]
    events.append((at, t, data[at:at + n]))
    at += n
fde = [e for e in events if e[1] == 15][0][2]
head = [e[2] for e in events if e[0] < start and e[1] in (15, 163)]  # FDE, GTID list
groups, cur = [], []
for pos, t, ev in events:
    if pos < start or t in (15, 163, 161, 4):
        continue
    if t == 162 and cur:  # a GTID event opens a group
        groups.append(cur); cur = []
    cur.append(ev)
if cur:
    groups.append(cur)
for i, g in enumerate(groups):
    open(f"{outdir}/seed-group-{i:02}", "wb").write(b"\xfebin" + b"".join(head) + b"".join(g))
open(f"{outdir}/seed-all", "wb").write(b"\xfebin" + b"".join(head) + b"".join(e for g in groups for e in g))
PY
rm -rf "$RAW"
echo "captured: $(ls "$CORPUS"/pgoutput | wc -l) pgoutput, $(ls "$CORPUS"/binlog | wc -l) binlog, $(ls "$CORPUS"/config | wc -l) config seeds"
