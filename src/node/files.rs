//! Files on a node, read and written by the server process through SQL, so
//! no shell or SSH access to the node is needed.
//!
//! Content travels as a bind parameter into a large object that
//! `lo_export` writes out; the transaction that carries it is rolled back,
//! so no large object is left behind. When the session may run server
//! programs (superuser or `pg_execute_server_program`), a file is written
//! next to its target and then renamed over it with the wanted mode, so a
//! crash at any point leaves either the old or the new file in force, never
//! a truncated one. Without that right the file is rewritten in place.

use tokio_postgres::GenericClient;

use crate::sql;

/// Suffix of the file written before it is renamed into place.
pub const NEW_SUFFIX: &str = ".terraform-new";

/// The file's bytes, or `None` when it does not exist.
pub async fn read<C: GenericClient>(
    c: &C,
    path: &str,
) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    let row = c.query_one(sql::READ_FILE, &[&path]).await?;
    row.try_get(0)
}

/// Writes the file in place. Must run inside a transaction that the caller
/// rolls back or commits; the large object used to carry the bytes is
/// rolled back with it, while the file stays written. A new file is created
/// with mode 0644.
pub async fn write<C: GenericClient>(
    c: &C,
    path: &str,
    bytes: &[u8],
) -> Result<(), tokio_postgres::Error> {
    let oid: u32 = c.query_one(sql::NEW_LARGE_OBJECT, &[&bytes]).await?.get(0);
    c.query_one(sql::EXPORT_LARGE_OBJECT, &[&oid, &path])
        .await?;
    Ok(())
}

/// Whether this session may run programs on the server (`COPY ... PROGRAM`).
pub async fn can_run_programs<C: GenericClient>(c: &C) -> Result<bool, tokio_postgres::Error> {
    Ok(c.query_one(sql::CAN_RUN_PROGRAMS, &[]).await?.get(0))
}

/// Quotes a string for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs a shell command on the server as its OS user; fails when the
/// command exits with an error. No rows are sent, so the command never
/// sees a broken pipe.
async fn run<C: GenericClient>(c: &C, command: &str) -> Result<(), tokio_postgres::Error> {
    c.batch_execute(&format!(
        "COPY (SELECT 1 WHERE false) TO PROGRAM {}",
        sql::literal(command)
    ))
    .await
}

/// Replaces the file as one step when the session may run programs (see
/// the module docs), else in place. `mode` (e.g. 0o600) is set on the new
/// file; `None` keeps the mode of the file being replaced. Must run inside
/// a transaction, as [`write`].
pub async fn replace<C: GenericClient>(
    c: &C,
    path: &str,
    bytes: &[u8],
    mode: Option<u32>,
    programs: bool,
) -> Result<(), tokio_postgres::Error> {
    if !programs {
        return write(c, path, bytes).await;
    }
    let tmp = format!("{path}{NEW_SUFFIX}");
    // A leftover from an interrupted write is truncated by the export and
    // gets its mode from the chmod below, so it needs no removal first.
    write(c, &tmp, bytes).await?;
    let chmod = match mode {
        Some(m) => format!("chmod {m:o} -- {}", sh_quote(&tmp)),
        None => format!(
            "if [ -e {p} ]; then chmod --reference={p} -- {t}; else chmod 600 -- {t}; fi",
            p = sh_quote(path),
            t = sh_quote(&tmp)
        ),
    };
    run(
        c,
        &format!("{chmod} && mv -f -- {} {}", sh_quote(&tmp), sh_quote(path)),
    )
    .await
}

/// Creates a directory (and its parents) with mode 0700 when missing.
/// Needs the right to run programs.
pub async fn make_dir<C: GenericClient>(c: &C, path: &str) -> Result<(), tokio_postgres::Error> {
    run(c, &format!("mkdir -p -m 700 -- {}", sh_quote(path))).await
}

/// Removes a file if it exists. Needs the right to run programs.
pub async fn remove<C: GenericClient>(c: &C, path: &str) -> Result<(), tokio_postgres::Error> {
    run(c, &format!("rm -f -- {}", sh_quote(path))).await
}

/// The file's permission bits, or `None` when the file does not exist.
/// Needs the right to run programs and a transaction (a temporary table
/// receives the answer and goes away with the transaction).
pub async fn mode<C: GenericClient>(
    c: &C,
    path: &str,
) -> Result<Option<u32>, tokio_postgres::Error> {
    c.batch_execute(sql::STAT_TABLE).await?;
    c.batch_execute(&format!(
        "COPY pg_temp.terraform_stat FROM PROGRAM {}",
        sql::literal(&format!(
            "stat -c %a -- {} 2>/dev/null || true",
            sh_quote(path)
        ))
    ))
    .await?;
    let row = c
        .query_opt("DELETE FROM pg_temp.terraform_stat RETURNING line", &[])
        .await?;
    Ok(row
        .and_then(|r| r.get::<_, Option<String>>(0))
        .and_then(|s| u32::from_str_radix(s.trim(), 8).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(sh_quote("/a b/c"), "'/a b/c'");
        assert_eq!(sh_quote("it's; rm -rf /"), "'it'\\''s; rm -rf /'");
    }
}
