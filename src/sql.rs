//! Every SQL statement the provider sends, built from plain values.
//!
//! User input reaches the server either as a bind parameter or through
//! [`ident`] / [`literal`], the only quoting helpers in the crate; nothing
//! else formats user input into SQL.

/// Quotes an identifier: `"` doubled, always quoted, so case and any
/// character survive.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes a string literal. Backslashes are safe whatever
/// `standard_conforming_strings` says because an `E''` literal is used
/// when one is present.
pub fn literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// What the provider needs to know about its own session on a node. The
/// roles it is a member of count as `+group` in pg_hba.conf counts them:
/// by membership (directly or through other roles) only, never by being a
/// superuser (for whom `pg_has_role` is true of every role).
pub const SESSION_INFO: &str = "SELECT current_user::text, current_database()::text, host(inet_client_addr()), \
     coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false), \
     coalesce((WITH RECURSIVE m(oid) AS (SELECT oid FROM pg_roles WHERE rolname = current_user \
       UNION SELECT a.roleid FROM pg_auth_members a JOIN m ON a.member = m.oid) \
       SELECT array_agg(b.rolname::text) FROM pg_roles b JOIN m ON m.oid = b.oid), '{}'), \
     (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), current_setting('server_version_num')::int, \
     extract(epoch from pg_conf_load_time())::float8";

/// `$1`: a setting name. Its value, or NULL when unset or unknown.
pub const SHOW_SETTING: &str = "SELECT current_setting($1, true)";

/// The certificate files a node uses now, as in force: its data directory
/// (what relative paths are relative to), `ssl`, and the server
/// certificate, CA and revocation list files.
pub const SSL_FILES: &str = "SELECT current_setting('data_directory'), current_setting('ssl'), \
     current_setting('ssl_cert_file'), current_setting('ssl_ca_file'), current_setting('ssl_crl_file')";

/// `$1`: a directory. The `.crt` files in it (none when it is missing), by
/// name.
pub const CRT_FILES: &str = "SELECT name FROM pg_catalog.pg_ls_dir($1, true, false) AS name \
     WHERE name LIKE '%.crt' ORDER BY name";

/// `$1`: path. The file's bytes, or NULL when it does not exist.
pub const READ_FILE: &str = "SELECT CASE WHEN (pg_stat_file($1, true)).size IS NULL THEN NULL ELSE pg_read_binary_file($1) END";

/// A temporary table that receives a file's content as COPY data (never
/// logged, unlike statement text and bind parameters); emptied first, and
/// gone with the transaction, which the caller rolls back.
pub const BLOB_TABLE: &str =
    "CREATE TEMP TABLE IF NOT EXISTS terraform_blob (data bytea) ON COMMIT DROP; \
     TRUNCATE pg_temp.terraform_blob";

/// The content arrives as one row of COPY text data.
pub const COPY_BLOB_IN: &str = "COPY pg_temp.terraform_blob (data) FROM STDIN";

/// A large object holding the content received into [`BLOB_TABLE`], for
/// `lo_export`; rolled back with the transaction. (`lo_export` cannot see a
/// large object created by the same statement, hence two statements.)
pub const BLOB_OBJECT: &str = "SELECT lo_from_bytea(0, (SELECT data FROM pg_temp.terraform_blob))";

/// `$1`: large object, `$2`: path. Writes the file as the server's OS user.
pub const EXPORT_LARGE_OBJECT: &str = "SELECT lo_export($1, $2)";

/// What the session may do with files on the server: run programs with
/// `COPY ... PROGRAM`, and the data directory when it may read that setting.
pub const FILE_RIGHTS: &str =
    "SELECT su OR pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER'), \
     CASE WHEN su OR pg_has_role(current_user, 'pg_read_all_settings', 'MEMBER') \
     THEN current_setting('data_directory') END \
     FROM (SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) AS su) AS s";

/// A temporary table for the output of a server program; it goes away with
/// the transaction.
pub const STAT_TABLE: &str =
    "CREATE TEMP TABLE IF NOT EXISTS terraform_stat (line text) ON COMMIT DROP";

/// The passfile's path, from the `timescaledb.passfile` setting (NULL when
/// TimescaleDB is not loaded) or else `passfile`, a relative path taken
/// from the data directory; and its bytes as [`READ_FILE`] reads them.
pub const PASSFILE_READ: &str = "SELECT path, CASE WHEN (pg_stat_file(path, true)).size IS NULL THEN NULL \
     ELSE pg_read_binary_file(path) END FROM (SELECT CASE WHEN s LIKE '/%' THEN s \
     ELSE rtrim(current_setting('data_directory'), '/') || '/' || s END AS path \
     FROM (SELECT coalesce(nullif(current_setting('timescaledb.passfile', true), ''), 'passfile') AS s) AS setting) AS p";

/// Every role with its attributes, expiry (text and epoch seconds) and
/// stored password.
pub const ROLES_ALL_AUTHID: &str = "SELECT rolname::text, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, \
     rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil::text, extract(epoch from rolvaliduntil)::float8, \
     rolpassword, true FROM pg_authid";

/// As [`ROLES_ALL_AUTHID`] for a session that may not read passwords.
pub const ROLES_ALL_ROLES: &str = "SELECT rolname::text, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, \
     rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil::text, extract(epoch from rolvaliduntil)::float8, \
     NULL::text, false FROM pg_roles";

/// `$1`: a role name. That role as [`ROLES_ALL_AUTHID`] has it.
pub const ROLE_ONE_AUTHID: &str = "SELECT rolname::text, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, \
     rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil::text, extract(epoch from rolvaliduntil)::float8, \
     rolpassword, true FROM pg_authid WHERE rolname = $1";

/// As [`ROLE_ONE_AUTHID`] for a session that may not read passwords.
pub const ROLE_ONE_ROLES: &str = "SELECT rolname::text, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, \
     rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil::text, extract(epoch from rolvaliduntil)::float8, \
     NULL::text, false FROM pg_roles WHERE rolname = $1";

/// Whether the session may read stored passwords.
pub const READS_PASSWORDS: &str = "SELECT has_table_privilege('pg_authid', 'SELECT')";

/// `$1`: a time as the user wrote it. Epoch seconds (infinite for
/// `infinity`); fails when it is not a time.
pub const TIMESTAMP_EPOCH: &str = "SELECT extract(epoch from $1::text::timestamptz)::float8";

/// `$1`: role name. What depends on the role, by database and kind.
pub const ROLE_DEPENDENTS: &str = "SELECT db.datname::text, d.deptype::text, count(*) \
     FROM pg_shdepend d LEFT JOIN pg_database db ON db.oid = d.dbid \
     WHERE d.refclassid = 'pg_authid'::regclass AND d.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1) \
     GROUP BY 1, 2 ORDER BY 1, 2";

/// `$1`: a timestamp as the user wrote it; fails when it is not one.
pub const CHECK_TIMESTAMP: &str = "SELECT $1::text::timestamptz::text";

/// The schemas holding a `distributed_exec(text, name[], boolean)`
/// procedure the provider may call: TimescaleDB's own (a member of the
/// `timescaledb` extension), or else one owned by a superuser. A procedure
/// of that name another role made is never called: every session runs
/// with `search_path` pinned to `pg_catalog` ([`crate::node::SESSION_SETTINGS`]),
/// so the procedure is named by its schema, and a role that may create in
/// that schema (TimescaleDB's is usually `public`) could otherwise add an
/// overload with looser arguments that wins the call.
pub const DISTRIBUTED_EXEC_SCHEMAS: &str = "SELECT n.nspname::text, \
     EXISTS (SELECT FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid \
       WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid \
       AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'timescaledb') \
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_roles o ON o.oid = p.proowner \
     WHERE p.proname = 'distributed_exec' AND p.prokind = 'p' \
     AND p.pronargs = 3 AND p.proargtypes[0] = 'text'::regtype AND p.proargtypes[1] = 'name[]'::regtype \
     AND p.proargtypes[2] = 'boolean'::regtype \
     AND (o.rolsuper OR EXISTS (SELECT FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid \
       WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid \
       AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'timescaledb')) \
     ORDER BY 2 DESC, 1";

/// `CALL <schema>.distributed_exec($1, $2, true)`: the statement, the data
/// node names. Runs the statement on those data nodes (never on the access
/// node itself) as one distributed transaction. Every argument has the
/// procedure's exact type, so only the procedure with exactly these
/// arguments is called (an overload with the same types cannot exist in
/// the same schema).
pub fn distributed_exec(schema: &str) -> String {
    format!(
        "CALL {}.distributed_exec($1::text, $2::text[]::name[], true)",
        ident(schema)
    )
}

/// USAGE on foreign servers: server, grantee, grant option; directly
/// granted only (not through membership), PUBLIC left out.
pub const SERVER_GRANTS_ALL: &str = "SELECT s.srvname::text, r.rolname::text, a.is_grantable \
     FROM pg_foreign_server s, aclexplode(coalesce(s.srvacl, acldefault('S', s.srvowner))) a \
     JOIN pg_roles r ON r.oid = a.grantee WHERE a.privilege_type = 'USAGE'";

/// Every role membership: group, member, admin option, and on PostgreSQL
/// 16 and later the inherit and set options (NULL before: read through
/// `to_jsonb` so one statement serves every version).
pub const MEMBERSHIPS_ALL: &str = "SELECT g.rolname::text, m.rolname::text, a.admin_option, \
     (to_jsonb(a) ->> 'inherit_option')::boolean, (to_jsonb(a) ->> 'set_option')::boolean \
     FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member";

/// Options of a membership, for [`grant_membership`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberOptions {
    pub admin: bool,
    /// PostgreSQL 16 and later only.
    pub inherit: Option<bool>,
    /// PostgreSQL 16 and later only.
    pub set: Option<bool>,
}

/// `GRANT group TO members` with the options: `WITH ADMIN OPTION` alone
/// (every version), or PostgreSQL 16's `WITH ADMIN ..., INHERIT ...,
/// SET ...` when `inherit` or `set` is given. On an existing membership
/// PostgreSQL 16 updates `INHERIT` and `SET`; the admin option is only ever
/// added by a grant ([`revoke_membership_admin`] takes it away).
pub fn grant_membership(group: &str, members: &[String], o: MemberOptions) -> String {
    let mut with = Vec::new();
    if o.inherit.is_some() || o.set.is_some() {
        with.push(format!("ADMIN {}", o.admin.to_string().to_uppercase()));
        if let Some(i) = o.inherit {
            with.push(format!("INHERIT {}", i.to_string().to_uppercase()));
        }
        if let Some(s) = o.set {
            with.push(format!("SET {}", s.to_string().to_uppercase()));
        }
    } else if o.admin {
        with.push("ADMIN OPTION".into());
    }
    let with = if with.is_empty() {
        String::new()
    } else {
        format!(" WITH {}", with.join(", "))
    };
    format!("GRANT {} TO {}{with}", ident(group), ident_list(members))
}

/// `REVOKE group FROM members`.
pub fn revoke_membership(group: &str, members: &[String]) -> String {
    format!("REVOKE {} FROM {}", ident(group), ident_list(members))
}

/// Takes the admin option (only) on `group` back from `members`.
pub fn revoke_membership_admin(group: &str, members: &[String]) -> String {
    format!(
        "REVOKE ADMIN OPTION FOR {} FROM {}",
        ident(group),
        ident_list(members)
    )
}

/// The names of the foreign servers.
pub const FOREIGN_SERVERS: &str = "SELECT srvname::text FROM pg_foreign_server";

/// `$1`: setting names. Each with the value the configuration files give
/// it (the last valid one; NULL when no file sets it), in the given order.
pub const FILE_SETTINGS: &str = "SELECT n, (SELECT f.setting FROM pg_file_settings f \
     WHERE f.name = n AND f.error IS NULL ORDER BY f.seqno DESC LIMIT 1) \
     FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i) ORDER BY i";

/// Every record of the pg_hba.conf file now on disk as the server parses
/// it, errors included.
pub const HBA_FILE_RULES: &str =
    "SELECT line_number, type, database, user_name, address, netmask, auth_method, \
     options, error FROM pg_hba_file_rules ORDER BY line_number";

/// Every mapping of the pg_ident.conf file now on disk as the server
/// parses it (PostgreSQL 15 and later), errors included.
pub const IDENT_FILE_MAPPINGS: &str = "SELECT line_number, map_name, sys_name, pg_username, error \
     FROM pg_ident_file_mappings ORDER BY line_number";

/// `$1`: a regular expression; fails when the server's engine refuses it.
pub const CHECK_REGEX: &str = "SELECT '' ~ $1::text";

pub const RELOAD: &str = "SELECT pg_reload_conf()";

/// Epoch seconds of the configuration load as seen by this session.
pub const CONF_LOAD_TIME: &str = "SELECT extract(epoch from pg_conf_load_time())::float8";

/// `$1`: path. Whether the file changed on disk after the server last read
/// its configuration (the modification time has whole seconds: a write in
/// the same second as the last reload but after it goes unseen).
pub const WRITTEN_SINCE_RELOAD: &str =
    "SELECT coalesce((pg_stat_file($1, true)).modification > pg_conf_load_time(), false)";

/// `$1`: lock key. Serialises edits of one file across provider
/// processes until the transaction ends (also when the session dies).
pub const ADVISORY_LOCK_XACT: &str = "SELECT pg_advisory_xact_lock($1)";

/// Whether the access node has TimescaleDB's multi-node catalog
/// (TimescaleDB 2.13 and earlier), and if so whether the view can be
/// trusted with the addresses the provider will send its credentials to:
/// a member of the `timescaledb` extension or owned by a superuser (on a
/// server without TimescaleDB, a database owner could make a schema of
/// that name); then the view's owner, for the message.
pub const DATA_NODE_CATALOG: &str = "SELECT c.oid IS NOT NULL, \
     coalesce((SELECT rolsuper FROM pg_roles WHERE oid = r.relowner), false) \
       OR EXISTS (SELECT FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid \
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
         AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'timescaledb'), \
     (SELECT rolname::text FROM pg_roles WHERE oid = r.relowner) \
     FROM (SELECT to_regclass('timescaledb_information.data_nodes') AS oid) AS c \
     LEFT JOIN pg_class r ON r.oid = c.oid";
pub const DATA_NODES: &str = "SELECT node_name::text, coalesce(options, '{}')::text[] FROM timescaledb_information.data_nodes ORDER BY node_name";

fn ident_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GRANT USAGE ON FOREIGN SERVER ...` to `roles`, optionally with the
/// grant option.
pub fn grant_server_usage(servers: &[String], roles: &[String], with_grant_option: bool) -> String {
    format!(
        "GRANT USAGE ON FOREIGN SERVER {} TO {}{}",
        ident_list(servers),
        ident_list(roles),
        if with_grant_option {
            " WITH GRANT OPTION"
        } else {
            ""
        }
    )
}

/// `REVOKE USAGE ON FOREIGN SERVER ...` from `roles`.
pub fn revoke_server_usage(servers: &[String], roles: &[String]) -> String {
    format!(
        "REVOKE USAGE ON FOREIGN SERVER {} FROM {}",
        ident_list(servers),
        ident_list(roles)
    )
}

/// Takes the grant option (only) back from `roles`.
pub fn revoke_server_grant_option(servers: &[String], roles: &[String]) -> String {
    format!(
        "REVOKE GRANT OPTION FOR USAGE ON FOREIGN SERVER {} FROM {}",
        ident_list(servers),
        ident_list(roles)
    )
}

/// `REASSIGN OWNED BY role TO to` (when `to` is given), then `DROP OWNED
/// BY role`, as one batch.
pub fn drop_owned(role: &str, reassign_to: Option<&str>) -> String {
    let drop = format!("DROP OWNED BY {}", ident(role));
    match reassign_to {
        Some(to) => format!("REASSIGN OWNED BY {} TO {}; {drop}", ident(role), ident(to)),
        None => drop,
    }
}

/// `ALTER SYSTEM SET name = 'value'`, or `ALTER SYSTEM RESET name` for
/// `None`.
pub fn alter_system(name: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("ALTER SYSTEM SET {} = {}", ident(name), literal(v)),
        None => format!("ALTER SYSTEM RESET {}", ident(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_every_name_and_value() {
        let servers = ["dn1".to_string(), "d\"n 2".to_string()];
        assert_eq!(
            grant_server_usage(&servers, &["Test Role".into()], true),
            "GRANT USAGE ON FOREIGN SERVER \"dn1\", \"d\"\"n 2\" TO \"Test Role\" WITH GRANT OPTION"
        );
        assert_eq!(
            grant_server_usage(&servers[..1], &["r".into(), "s".into()], false),
            "GRANT USAGE ON FOREIGN SERVER \"dn1\" TO \"r\", \"s\""
        );
        assert_eq!(
            revoke_server_usage(&servers[..1], &["r\"; DROP ROLE x; --".into()]),
            "REVOKE USAGE ON FOREIGN SERVER \"dn1\" FROM \"r\"\"; DROP ROLE x; --\""
        );
        assert_eq!(
            revoke_server_grant_option(&servers[..1], &["r".into()]),
            "REVOKE GRANT OPTION FOR USAGE ON FOREIGN SERVER \"dn1\" FROM \"r\""
        );
        assert_eq!(drop_owned("a\"b", None), "DROP OWNED BY \"a\"\"b\"");
        assert_eq!(
            drop_owned("a", Some("postgres")),
            "REASSIGN OWNED BY \"a\" TO \"postgres\"; DROP OWNED BY \"a\""
        );
        assert_eq!(
            alter_system("ssl_cert_file", Some("/d/it's.crt")),
            "ALTER SYSTEM SET \"ssl_cert_file\" = '/d/it''s.crt'"
        );
        assert_eq!(alter_system("ssl", None), "ALTER SYSTEM RESET \"ssl\"");
    }

    #[test]
    fn membership_statements_quote_every_name_and_say_each_option() {
        let m = ["a\"b".to_string(), "c".to_string()];
        assert_eq!(
            grant_membership("g g", &m, MemberOptions::default()),
            "GRANT \"g g\" TO \"a\"\"b\", \"c\""
        );
        let admin = MemberOptions {
            admin: true,
            ..Default::default()
        };
        assert_eq!(
            grant_membership("g", &m[1..], admin),
            "GRANT \"g\" TO \"c\" WITH ADMIN OPTION"
        );
        let v16 = MemberOptions {
            admin: false,
            inherit: Some(false),
            set: Some(true),
        };
        assert_eq!(
            grant_membership("g", &m[1..], v16),
            "GRANT \"g\" TO \"c\" WITH ADMIN FALSE, INHERIT FALSE, SET TRUE"
        );
        assert_eq!(revoke_membership("g", &m[1..]), "REVOKE \"g\" FROM \"c\"");
        assert_eq!(
            revoke_membership_admin("g", &m[1..]),
            "REVOKE ADMIN OPTION FOR \"g\" FROM \"c\""
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(ident("Test \"Role\""), "\"Test \"\"Role\"\"\"");
        assert_eq!(ident("ünï"), "\"ünï\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal(r"a\'b"), r"E'a\\''b'");
        assert_eq!(literal("'; DROP TABLE x; --"), "'''; DROP TABLE x; --'");
    }
}
