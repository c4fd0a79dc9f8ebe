// The tables, the commit function and the statements of the PostgreSQL store
// (docs/store-format.md, "On PostgreSQL"). Every column holds ciphertext, a keyed hash, or a number.

/** Taken shared by every commit and exclusively by a data-key switch: no commit straddles one. */
export const KEYRING_LOCK = 5_349_434_001
/** Held (session level) by the one process rotating the data key. */
export const ROTATION_LOCK = 5_349_434_002

/** SQLSTATEs the commit function raises: an `expect` that failed (DETAIL: the change's index), and a stale data key. */
export const SQLSTATE_CONFLICT = 'SL409'
export const SQLSTATE_STALE_KEY = 'SL410'

/** Run in one transaction by create: all of it lands, or none. */
export const CREATE_SCHEMA = `
CREATE TABLE securelogin_header (
  id smallint PRIMARY KEY CHECK (id = 1),
  format_version integer NOT NULL,
  store_id bytea NOT NULL,
  kdf text NOT NULL,
  salt bytea NOT NULL,
  root_box bytea NOT NULL,
  index_box bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE securelogin_keyring (
  key_version integer PRIMARY KEY,
  key_box bytea NOT NULL,
  retired boolean NOT NULL DEFAULT false,
  sealed_from bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE securelogin_version AS bigint;
CREATE TABLE securelogin_kv (
  hkey bytea PRIMARY KEY,
  p1 bytea NOT NULL,
  p2 bytea,
  version bigint NOT NULL,
  key_version integer NOT NULL,
  name_box bytea NOT NULL,
  box bytea NOT NULL
);
CREATE INDEX securelogin_kv_p1 ON securelogin_kv (p1);
CREATE INDEX securelogin_kv_p2 ON securelogin_kv (p2);
CREATE INDEX securelogin_kv_key_version ON securelogin_kv (key_version);

-- One commit, one statement, one round trip: its changes in order, all or nothing (a RAISE
-- undoes the statement). Under READ COMMITTED an UPDATE or DELETE that waits for a concurrent
-- writer re-checks "version = expected" on the row that writer left, and an INSERT ... ON
-- CONFLICT DO NOTHING that waits for a concurrent insert of the same key does nothing once it
-- commits: each is a compare-and-set.
CREATE FUNCTION securelogin_commit(
  in_hkeys bytea[], in_p1s bytea[], in_p2s bytea[], in_name_boxes bytea[], in_boxes bytea[],
  in_expects bigint[], in_expect_absent boolean[], in_key_version integer
) RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
  i integer;
  n integer;
  put_any boolean := false;
BEGIN
  PERFORM pg_advisory_xact_lock_shared(${KEYRING_LOCK});
  IF in_key_version IS DISTINCT FROM (SELECT max(key_version) FROM securelogin_keyring) THEN
    RAISE EXCEPTION USING ERRCODE = '${SQLSTATE_STALE_KEY}',
      MESSAGE = 'securelogin: data key ' || in_key_version || ' is not the current one';
  END IF;
  FOR i IN 1 .. coalesce(array_length(in_hkeys, 1), 0) LOOP
    IF in_boxes[i] IS NULL THEN
      IF in_expect_absent[i] THEN
        PERFORM 1 FROM securelogin_kv WHERE hkey = in_hkeys[i];
        n := CASE WHEN FOUND THEN 0 ELSE 1 END;
      ELSIF in_expects[i] IS NOT NULL THEN
        DELETE FROM securelogin_kv WHERE hkey = in_hkeys[i] AND version = in_expects[i];
        GET DIAGNOSTICS n = ROW_COUNT;
      ELSE
        DELETE FROM securelogin_kv WHERE hkey = in_hkeys[i];
        n := 1;
      END IF;
    ELSE
      put_any := true;
      IF in_expect_absent[i] THEN
        INSERT INTO securelogin_kv (hkey, p1, p2, version, key_version, name_box, box)
          VALUES (in_hkeys[i], in_p1s[i], in_p2s[i], nextval('securelogin_version'), in_key_version,
            in_name_boxes[i], in_boxes[i])
          ON CONFLICT (hkey) DO NOTHING;
        GET DIAGNOSTICS n = ROW_COUNT;
      ELSIF in_expects[i] IS NOT NULL THEN
        UPDATE securelogin_kv
          SET version = nextval('securelogin_version'), key_version = in_key_version,
            name_box = in_name_boxes[i], box = in_boxes[i]
          WHERE hkey = in_hkeys[i] AND version = in_expects[i];
        GET DIAGNOSTICS n = ROW_COUNT;
      ELSE
        INSERT INTO securelogin_kv (hkey, p1, p2, version, key_version, name_box, box)
          VALUES (in_hkeys[i], in_p1s[i], in_p2s[i], nextval('securelogin_version'), in_key_version,
            in_name_boxes[i], in_boxes[i])
          ON CONFLICT (hkey) DO UPDATE
          SET version = EXCLUDED.version, key_version = EXCLUDED.key_version,
            name_box = EXCLUDED.name_box, box = EXCLUDED.box;
        n := 1;
      END IF;
    END IF;
    IF n = 0 THEN
      RAISE EXCEPTION USING ERRCODE = '${SQLSTATE_CONFLICT}',
        MESSAGE = 'securelogin: an expected version did not hold', DETAIL = (i - 1)::text;
    END IF;
  END LOOP;
  RETURN CASE WHEN put_any THEN currval('securelogin_version') END;
END
$fn$;
`

/** A named prepared statement: parsed once per connection, then only bound and run. */
export interface Statement {
  name: string
  text: string
}

const statement = (name: string, text: string): Statement => ({ name: `securelogin_${name}`, text })

export const SQL = {
  headerExists: statement('header_exists', `SELECT to_regclass('securelogin_header') IS NOT NULL AS present`),
  readHeader: statement(
    'read_header',
    'SELECT format_version, store_id, kdf, salt, root_box, index_box FROM securelogin_header WHERE id = 1',
  ),
  insertHeader: statement(
    'insert_header',
    `INSERT INTO securelogin_header (id, format_version, store_id, kdf, salt, root_box, index_box)
     VALUES (1, $1, $2, $3, $4, $5, $6)`,
  ),
  rewrapRoot: statement(
    'rewrap_root',
    'UPDATE securelogin_header SET kdf = $1, salt = $2, root_box = $3 WHERE id = 1 AND salt = $4',
  ),
  readKeyring: statement(
    'read_keyring',
    'SELECT key_version, key_box, retired, sealed_from FROM securelogin_keyring ORDER BY key_version',
  ),
  insertKey: statement(
    'insert_key',
    `INSERT INTO securelogin_keyring (key_version, key_box, sealed_from)
     VALUES ($1, $2, (SELECT last_value FROM securelogin_version))`,
  ),
  lastKeyVersion: statement('last_key_version', 'SELECT max(key_version) AS last FROM securelogin_keyring'),
  retireUnused: statement(
    'retire_unused',
    `UPDATE securelogin_keyring k SET retired = true
     WHERE k.key_version < $1 AND NOT k.retired
       AND NOT EXISTS (SELECT 1 FROM securelogin_kv v WHERE v.key_version = k.key_version)
     RETURNING k.key_version`,
  ),
  get: statement('get', 'SELECT version, key_version, box FROM securelogin_kv WHERE hkey = $1'),
  version: statement('version', 'SELECT version FROM securelogin_kv WHERE hkey = $1'),
  commit: statement(
    'commit',
    `SELECT securelogin_commit($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[],
       $6::bigint[], $7::boolean[], $8::integer) AS last`,
  ),
  namesAll: statement('names_all', 'SELECT hkey, key_version, name_box FROM securelogin_kv'),
  namesP1: statement('names_p1', 'SELECT hkey, key_version, name_box FROM securelogin_kv WHERE p1 = $1'),
  namesP2: statement('names_p2', 'SELECT hkey, key_version, name_box FROM securelogin_kv WHERE p2 = $1'),
  countAll: statement('count_all', 'SELECT count(*) AS n FROM securelogin_kv'),
  countP1: statement('count_p1', 'SELECT count(*) AS n FROM securelogin_kv WHERE p1 = $1'),
  countP2: statement('count_p2', 'SELECT count(*) AS n FROM securelogin_kv WHERE p2 = $1'),
  ping: statement('ping', 'SELECT 1 AS one'),
  size: statement('size', `SELECT pg_total_relation_size('securelogin_kv') AS bytes`),
  rowsAfter: statement(
    'rows_after',
    `SELECT hkey, p1, p2, version, key_version, name_box, box FROM securelogin_kv
     WHERE hkey > $1 ORDER BY hkey LIMIT $2`,
  ),
  underOldKeys: statement(
    'under_old_keys',
    'SELECT hkey, version, key_version, name_box, box FROM securelogin_kv WHERE key_version < $1 LIMIT $2',
  ),
  // A row a commit changed meanwhile has a new version and is left alone: it is under the new key already.
  reseal: statement(
    'reseal',
    `UPDATE securelogin_kv AS kv SET key_version = $1, name_box = u.name_box, box = u.box
     FROM unnest($2::bytea[], $3::bigint[], $4::bytea[], $5::bytea[]) AS u(hkey, version, name_box, box)
     WHERE kv.hkey = u.hkey AND kv.version = u.version`,
  ),
} as const
