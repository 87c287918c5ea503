//! Files on a node, read and written by the server process through SQL, so
//! no shell or SSH access to the node is needed.
//!
//! Content travels as `COPY ... FROM STDIN` data into a temporary table,
//! never as a statement text or a bind parameter: PostgreSQL logs those
//! (`log_statement`, `log_min_duration_statement`, `auto_explain`) but never
//! COPY data, so secrets stay out of the server's log whatever its logging
//! settings. The transaction that carries the table is rolled back, so
//! nothing of it is left behind.
//!
//! When the session may run server programs (superuser or
//! `pg_execute_server_program`), one server program does the whole
//! replacement, the content arriving on its standard input (`COPY ... TO
//! PROGRAM`, base64 so that COPY's text format passes it unchanged): the
//! file is staged in a fresh directory of its own beside the target (mode
//! 0700, made by `mkdir`, which never follows a link; the shell's umask is
//! 077), given its mode there, and renamed over the target: no other OS user
//! can read it at any moment, a link at the target is replaced rather than
//! followed, and a crash leaves either the old or the new file in force,
//! never a truncated one. A staging directory left by a killed session is
//! removed by the next write of that file. A file directly in the data
//! directory (where PostgreSQL itself makes sure no other OS user may
//! write) is staged beside the target instead, under the same umask: no
//! one else can put a link there, and the write costs two processes fewer.
//! Without that right the file is rewritten in place, by `lo_export` of a
//! large object made from the table.

use futures_util::SinkExt;
use tokio_postgres::GenericClient;

use crate::sql;

/// Suffix of the private directory a file is staged in before it is
/// renamed into place.
pub const STAGING_SUFFIX: &str = ".terraform-new.d";

/// What earlier releases staged beside the target (a plain file, created
/// with the server's default mode); removed whenever the target is written.
const OLD_STAGING_SUFFIX: &str = ".terraform-new";

/// The file's bytes, or `None` when it does not exist.
pub async fn read<C: GenericClient>(
    c: &C,
    path: &str,
) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    let row = c.query_one(sql::READ_FILE, &[&path]).await?;
    row.try_get(0)
}

/// Writes the file in place. Must run inside a transaction that the caller
/// rolls back or commits; the table and large object used to carry the
/// bytes are rolled back with it, while the file stays written. A new file
/// is created with mode 0644 (`lo_export` sets that itself).
pub async fn write<C: GenericClient>(
    c: &C,
    path: &str,
    bytes: &[u8],
) -> Result<(), tokio_postgres::Error> {
    load_blob(c, bytes).await?;
    let oid: u32 = c.query_one(sql::BLOB_OBJECT, &[]).await?.get(0);
    c.query_one(sql::EXPORT_LARGE_OBJECT, &[&oid, &path])
        .await?;
    Ok(())
}

/// Puts `bytes` into the temporary table, as COPY data.
async fn load_blob<C: GenericClient>(c: &C, bytes: &[u8]) -> Result<(), tokio_postgres::Error> {
    c.batch_execute(sql::BLOB_TABLE).await?;
    let sink = c.client().copy_in(sql::COPY_BLOB_IN).await?;
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from(copy_text_row(bytes))).await?;
    sink.finish().await?;
    Ok(())
}

/// One row of `COPY ... FROM STDIN` text format holding `bytes` as a bytea
/// in hex (`\\x` is COPY's escape for the backslash bytea input wants).
fn copy_text_row(bytes: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(bytes.len() * 2 + 4);
    row.extend_from_slice(b"\\\\x");
    row.extend_from_slice(hex::encode(bytes).as_bytes());
    row.push(b'\n');
    row
}

/// What a session may do with files on the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rights {
    /// May run programs on the server (`COPY ... PROGRAM`): superuser or
    /// `pg_execute_server_program`.
    pub programs: bool,
    /// The data directory, when the session may read the setting.
    pub data_directory: Option<String>,
}

impl Rights {
    /// Whether `path` is directly in the data directory, which PostgreSQL
    /// refuses to start in unless no OS user but its own may write there
    /// (mode 0700 or 0750, owned by the server's user).
    pub fn in_data_directory(&self, path: &str) -> bool {
        let (Some(data), Some((dir, _))) = (&self.data_directory, path.rsplit_once('/')) else {
            return false;
        };
        let data = data.trim_end_matches('/');
        !data.is_empty() && dir == data
    }
}

/// What this session may do with files on the server.
pub async fn rights<C: GenericClient>(c: &C) -> Result<Rights, tokio_postgres::Error> {
    let row = c.query_one(sql::FILE_RIGHTS, &[]).await?;
    Ok(Rights {
        programs: row.get(0),
        data_directory: row.get(1),
    })
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
    rights: &Rights,
) -> Result<(), tokio_postgres::Error> {
    Replace::new(path, bytes, mode).run(c, rights).await
}

/// A replacement of one file, with what goes with it.
pub struct Replace<'a> {
    path: &'a str,
    bytes: &'a [u8],
    mode: Option<u32>,
    obsolete: Vec<String>,
    /// Where to keep the content replaced, and that content.
    backup: Option<String>,
}

impl<'a> Replace<'a> {
    pub fn new(path: &'a str, bytes: &'a [u8], mode: Option<u32>) -> Replace<'a> {
        Replace {
            path,
            bytes,
            mode,
            obsolete: Vec::new(),
            backup: None,
        }
    }

    /// Removes `path` too, in the server program that prepares the
    /// staging directory (with the right to run programs only; without it
    /// it stays).
    pub fn removing(mut self, path: String) -> Self {
        self.obsolete.push(path);
        self
    }

    /// Keeps the content being replaced in `path` (mode
    /// 0600): copied by the server into the staging directory and renamed
    /// into place with the new file (for a file directly in the data
    /// directory, copied straight to its place); without the right to run
    /// programs no copy is kept (see [`Replace::run`]).
    pub fn keeping_backup_in(mut self, path: String) -> Self {
        self.backup = Some(path);
        self
    }

    /// Makes the replacement: with the right to run programs, three
    /// statements (the table, the content, the program) and one shell
    /// that removes what a killed session left (only when something is
    /// there), makes the staging directory, copies the backup into it,
    /// decodes the content into it, sets modes and renames everything into
    /// place. A file directly in the data directory is staged beside it
    /// (see the module docs).
    pub async fn run<C: GenericClient>(
        &self,
        c: &C,
        rights: &Rights,
    ) -> Result<(), tokio_postgres::Error> {
        if !rights.programs {
            // `lo_export` creates a file with mode 0644, and without the
            // right to run programs nothing can narrow it: the previous
            // content (pg_hba.conf may hold an LDAP bind password) is kept
            // in memory for a restore, not on disk for everyone to read.
            return write(c, self.path, self.bytes).await;
        }
        load_blob(c, self.bytes).await?;
        // A scalar subquery: anything but the one row loaded is an error or
        // NULL, which COPY sends as `\N` and base64 refuses, so the file is
        // never replaced by anything else.
        c.batch_execute(&format!(
            "COPY (SELECT translate(encode((SELECT data FROM pg_temp.terraform_blob), 'base64'), E'\\n', '')) \
             TO PROGRAM {}",
            sql::literal(&self.script(rights.in_data_directory(self.path)))
        ))
        .await
    }

    /// The shell program of [`Replace::run`]; the content comes on its
    /// standard input as one line of base64. `private_dir`: the target's
    /// directory is one no other OS user may write to, so nobody else can
    /// put a link where the file is staged and it is staged beside the
    /// target, with no staging directory of its own (two processes fewer).
    fn script(&self, private_dir: bool) -> String {
        let path = self.path;
        let staging = format!("{path}{STAGING_SUFFIX}");
        // In a private directory the file is staged beside the target;
        // elsewhere in a fresh directory of its own.
        let (tmp, kept) = if private_dir {
            (format!("{path}{OLD_STAGING_SUFFIX}"), None)
        } else {
            (format!("{staging}/file"), Some(format!("{staging}/backup")))
        };
        // `rm -rf` removes a leftover of a killed session (a link in its
        // place included, without following it); `mkdir` fails rather than
        // reuse anything that appears in between. The tests are shell
        // built-ins: nothing runs when nothing is left over.
        let mut leftovers = vec![staging.clone(), format!("{path}{OLD_STAGING_SUFFIX}")];
        leftovers.extend(self.obsolete.iter().cloned());
        let present = leftovers
            .iter()
            .map(|p| format!("[ -e {q} ] || [ -L {q} ]", q = sh_quote(p)))
            .collect::<Vec<_>>()
            .join(" || ");
        let quoted = leftovers
            .iter()
            .map(|p| sh_quote(p))
            .collect::<Vec<_>>()
            .join(" ");
        let mut script = format!("umask 077 && if {present}; then rm -rf -- {quoted}; fi");
        if !private_dir {
            script.push_str(&format!(" && mkdir -m 700 -- {}", sh_quote(&staging)));
        }
        if let Some(b) = &self.backup {
            // Copied into the staging directory and renamed with the file;
            // in a private directory copied straight to its place.
            script.push_str(&format!(
                " && install -m 600 -T -- {} {}",
                sh_quote(path),
                sh_quote(kept.as_deref().unwrap_or(b))
            ));
        }
        // Made under umask 077: mode 0600 from its creation on.
        script.push_str(&format!(" && base64 -d > {}", sh_quote(&tmp)));
        match self.mode {
            Some(0o600) => {}
            Some(m) => script.push_str(&format!(" && chmod {m:o} -- {}", sh_quote(&tmp))),
            None => script.push_str(&format!(
                " && if [ -e {p} ]; then chmod --reference={p} -- {t}; fi",
                p = sh_quote(path),
                t = sh_quote(&tmp)
            )),
        }
        if let (Some(b), Some(k)) = (&self.backup, &kept) {
            script.push_str(&format!(" && mv -f -T -- {} {}", sh_quote(k), sh_quote(b)));
        }
        script.push_str(&format!(
            " && mv -f -T -- {} {}",
            sh_quote(&tmp),
            sh_quote(path)
        ));
        if !private_dir {
            script.push_str(&format!(" && rmdir -- {}", sh_quote(&staging)));
        }
        script
    }
}

/// Creates a directory (and its parents) with mode 0700 when missing.
/// Needs the right to run programs.
pub async fn make_dir<C: GenericClient>(c: &C, path: &str) -> Result<(), tokio_postgres::Error> {
    run(c, &format!("mkdir -p -m 700 -- {}", sh_quote(path))).await
}

/// Removes a file if it exists (never a directory: a directory there is
/// not the provider's file, and the removal fails), with whatever a killed
/// write of it left behind (the staging directory the provider makes).
/// Needs the right to run programs.
pub async fn remove<C: GenericClient>(c: &C, path: &str) -> Result<(), tokio_postgres::Error> {
    run(
        c,
        &format!(
            "rm -f -- {} && rm -rf -- {} {}",
            sh_quote(path),
            sh_quote(&format!("{path}{STAGING_SUFFIX}")),
            sh_quote(&format!("{path}{OLD_STAGING_SUFFIX}"))
        ),
    )
    .await
}

/// The file's permission bits, or `None` when the file does not exist.
/// Needs the right to run programs and a transaction (a temporary table
/// receives the answer and goes away with the transaction). One round trip:
/// the table, the program and the answer travel as one query.
pub async fn mode<C: GenericClient>(
    c: &C,
    path: &str,
) -> Result<Option<u32>, tokio_postgres::Error> {
    let query = format!(
        "{}; COPY pg_temp.terraform_stat FROM PROGRAM {}; DELETE FROM pg_temp.terraform_stat RETURNING line",
        sql::STAT_TABLE,
        sql::literal(&format!(
            "stat -c %a -- {} 2>/dev/null || true",
            sh_quote(path)
        ))
    );
    let line = c
        .simple_query(&query)
        .await?
        .into_iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        });
    Ok(line.and_then(|s| u32::from_str_radix(s.trim(), 8).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_carry_bytes_as_escaped_hex() {
        assert_eq!(copy_text_row(b""), b"\\\\x\n");
        assert_eq!(copy_text_row(b"a\n\\"), b"\\\\x610a5c\n");
    }

    /// Runs a replacement's program as the server would (`sh -c`, the
    /// content in base64 on standard input), after a umask that lets
    /// everyone read what is created.
    fn run_script(r: &Replace<'_>, private: bool) -> std::process::Output {
        use base64::Engine;
        let line = base64::engine::general_purpose::STANDARD.encode(r.bytes) + "\n";
        run_script_on(r, private, &line)
    }

    /// As [`run_script`], with `stdin` as what COPY sends.
    fn run_script_on(r: &Replace<'_>, private: bool, stdin: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask 022\n{}", r.script(private)))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn mode_of(p: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_program_replaces_a_file_privately_and_in_one_step() {
        replaces_privately_and_in_one_step(false);
    }

    #[test]
    fn in_a_private_directory_the_program_stages_beside_the_file() {
        let script = Replace::new("/d/f", b"", Some(0o600)).script(true);
        assert!(
            !script.contains("mkdir") && !script.contains("rmdir"),
            "{script}"
        );
        replaces_privately_and_in_one_step(true);
    }

    /// A replacement, with a staging directory or (`private`) beside the
    /// target: the content exact, mode 0600 from the start, links replaced
    /// rather than followed, leftovers removed, the backup kept.
    fn replaces_privately_and_in_one_step(private: bool) {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("passfile");
        let t = target.to_str().unwrap();
        let content: Vec<u8> = (0..=255u8).chain(*b"\n*:*:*:u:p\\:w\n").collect();
        // A new file: mode 0600 from its creation, whatever the umask of
        // the server's process.
        let out = run_script(&Replace::new(t, &content, Some(0o600)), private);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&target).unwrap(), content);
        assert_eq!(mode_of(&target), 0o600);
        // A link at the target is replaced, not followed; leftovers of a
        // killed write (a staging directory, a file staged beside the
        // target, readable by all) are removed; the backup keeps the old
        // content.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "untouched").unwrap();
        std::fs::remove_file(&target).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &target).unwrap();
        let staging = format!("{t}{STAGING_SUFFIX}");
        std::fs::create_dir(&staging).unwrap();
        std::fs::write(format!("{staging}/file"), "half").unwrap();
        let beside = format!("{t}{OLD_STAGING_SUFFIX}");
        std::fs::write(&beside, "half").unwrap();
        std::fs::set_permissions(&beside, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let backup = dir.path().join("backup");
        let r = Replace::new(t, b"new", None).keeping_backup_in(backup.to_str().unwrap().into());
        let out = run_script(&r, private);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert!(!std::fs::symlink_metadata(&target).unwrap().is_symlink());
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"untouched");
        assert_eq!(std::fs::read(&backup).unwrap(), b"untouched");
        assert_eq!(mode_of(&backup), 0o600);
        assert!(!std::path::Path::new(&staging).exists());
        // A file staged by a killed write, readable by all, is not reused
        // as it is: the new file still has mode 0600 from the start.
        std::fs::write(&beside, "half").unwrap();
        std::fs::set_permissions(&beside, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let out = run_script(&Replace::new(t, b"again", Some(0o600)), private);
        assert!(out.status.success());
        assert_eq!(std::fs::read(&target).unwrap(), b"again");
        assert_eq!(mode_of(&target), 0o600);
        // An empty file is written as empty; another mode is set.
        let out = run_script(&Replace::new(t, b"", Some(0o644)), private);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"");
        assert_eq!(mode_of(&target), 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names.len(),
            3,
            "nothing else left beside the file: {names:?}"
        );
        // A NULL (no content loaded) reaches the program as COPY's `\N`:
        // refused, the file left as it was.
        std::fs::write(&target, "kept").unwrap();
        let out = run_script_on(&Replace::new(t, b"", Some(0o600)), private, "\\N\n");
        assert!(!out.status.success());
        assert_eq!(std::fs::read(&target).unwrap(), b"kept");
    }

    #[test]
    fn only_a_file_directly_in_the_data_directory_is_in_a_private_one() {
        let rights = |d: Option<&str>| Rights {
            programs: true,
            data_directory: d.map(str::to_string),
        };
        let data = rights(Some("/var/lib/pg/data/"));
        assert!(data.in_data_directory("/var/lib/pg/data/pg_hba.conf"));
        assert!(data.in_data_directory("/var/lib/pg/data/passfile"));
        for other in [
            "/var/lib/pg/data/sub/passfile",
            "/var/lib/pg/passfile",
            "/var/lib/pg/data/../data/passfile",
            "/tmp/passfile",
            "passfile",
        ] {
            assert!(!data.in_data_directory(other), "{other}");
        }
        assert!(!rights(None).in_data_directory("/var/lib/pg/data/passfile"));
        assert!(!rights(Some("/")).in_data_directory("/passfile"));
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(sh_quote("/a b/c"), "'/a b/c'");
        assert_eq!(sh_quote("it's; rm -rf /"), "'it'\\''s; rm -rf /'");
    }
}
