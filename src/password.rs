//! Role passwords as PostgreSQL stores them (`pg_authid.rolpassword`):
//! SCRAM-SHA-256 verifiers and md5 hashes.
//!
//! The provider never sends a plain password to a node: it computes the
//! verifier itself and sends that, which PostgreSQL stores as it is (as
//! `psql`'s `\password` does). To detect a password changed by hand, it
//! recomputes the stored verifier from the configured password with the
//! stored salt and iteration count and compares.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// How a password is stored (PostgreSQL's `password_encryption` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encryption {
    ScramSha256,
    Md5,
}

/// The form a stored password is in, when it is one the provider knows.
pub fn kind(stored: &str) -> Option<Encryption> {
    if stored.starts_with("SCRAM-SHA-256$") {
        Some(Encryption::ScramSha256)
    } else if stored.len() == 35 && stored.starts_with("md5") {
        Some(Encryption::Md5)
    } else {
        None
    }
}

impl Encryption {
    pub const NAMES: &'static [&'static str] = &["scram-sha-256", "md5"];

    /// The name as PostgreSQL spells it.
    pub fn name(self) -> &'static str {
        match self {
            Encryption::ScramSha256 => "scram-sha-256",
            Encryption::Md5 => "md5",
        }
    }
}

/// The stored form of `password` for role `role`.
pub fn encrypt(password: &Secret, role: &str, how: Encryption) -> Secret {
    let p = password.expose().as_bytes();
    Secret::new(match how {
        Encryption::ScramSha256 => postgres_protocol::password::scram_sha_256(p),
        Encryption::Md5 => postgres_protocol::password::md5(p, role),
    })
}

/// What comparing a stored password with a configured one found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Matches,
    Differs,
    /// The stored value is in a form the provider cannot check (a plain
    /// text password from an old server, or one it cannot read).
    Unknown,
}

/// Compares stored passwords with configured ones, remembering each result
/// (keyed by a digest, never the password) so that a refresh does not redo
/// a key derivation it already did. One lives in the configured provider.
#[derive(Debug, Default)]
pub struct Checker {
    memo: std::sync::Mutex<std::collections::HashMap<[u8; 32], Check>>,
    /// How many comparisons needed the check itself (a key derivation for
    /// a SCRAM verifier).
    computed: std::sync::atomic::AtomicU64,
}

fn memo_key(stored: &str, password: &str, role: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [stored, password, role] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().into()
}

/// A digest of a stored verifier, kept (privately) with the state once the
/// verifier was found to match the configured password: while the node
/// still stores the same verifier, nothing needs recomputing.
pub fn stamp(stored: &str) -> String {
    hex::encode(Sha256::digest(stored.as_bytes()))
}

impl Checker {
    fn memo(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], Check>> {
        // A panic while holding the lock cannot leave the map invalid.
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `stored` is known to match `password` (its stamp was
    /// kept with the state after a check or a change).
    pub fn trust(&self, stored: &str, password: &str, role: &str) {
        self.memo()
            .insert(memo_key(stored, password, role), Check::Matches);
    }

    /// How many comparisons were not found among the remembered ones.
    pub fn computed(&self) -> u64 {
        self.computed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Compares the stored password of `role` with `password`.
    pub fn check(&self, stored: &str, password: &str, role: &str) -> Check {
        let key = memo_key(stored, password, role);
        if let Some(c) = self.memo().get(&key) {
            return *c;
        }
        let c = check(stored, password, role);
        self.computed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut m = self.memo();
        if m.len() > 100_000 {
            m.clear();
        }
        m.insert(key, c);
        c
    }
}

/// Compares the stored password of `role` with `password` (the key
/// derivation every time; [`Checker`] remembers results).
pub fn check(stored: &str, password: &str, role: &str) -> Check {
    if let Some(rest) = stored.strip_prefix("SCRAM-SHA-256$") {
        return match check_scram(rest, password) {
            Some(true) => Check::Matches,
            Some(false) => Check::Differs,
            None => Check::Unknown,
        };
    }
    if stored.len() == 35 && stored.starts_with("md5") {
        let mine = postgres_protocol::password::md5(password.as_bytes(), role);
        return if constant_time_eq(mine.as_bytes(), stored.as_bytes()) {
            Check::Matches
        } else {
            Check::Differs
        };
    }
    Check::Unknown
}

type HmacSha256 = hmac::Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data);
    m.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with one output block: SCRAM's `Hi()`. The keyed
/// HMAC state is made once and cloned for each round.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let keyed =
        <HmacSha256 as KeyInit>::new_from_slice(password).unwrap_or_else(|_| unreachable!());
    let round = |data: &[u8]| -> [u8; 32] {
        let mut m = keyed.clone();
        m.update(data);
        m.finalize().into_bytes().into()
    };
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = round(&first);
    let mut out = u;
    for _ in 1..iterations {
        u = round(&u);
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out
}

/// The password as SCRAM hashes it: SASLprep when it applies, else the raw
/// bytes (what PostgreSQL does).
fn normalize(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(p) => p.into_owned().into_bytes(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

/// `<iterations>:<salt>$<StoredKey>:<ServerKey>`; `None` when malformed.
fn check_scram(rest: &str, password: &str) -> Option<bool> {
    let (params, keys) = rest.split_once('$')?;
    let (iterations, salt) = params.split_once(':')?;
    let (stored_key, server_key) = keys.split_once(':')?;
    let iterations: u32 = iterations
        .parse()
        .ok()
        .filter(|i| *i > 0 && *i <= 10_000_000)?;
    let salt = STANDARD.decode(salt).ok()?;
    let stored_key = STANDARD.decode(stored_key).ok()?;
    let server_key = STANDARD.decode(server_key).ok()?;
    let salted = hi(&normalize(password), &salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let mine_stored: [u8; 32] = Sha256::digest(client_key).into();
    let mine_server = hmac(&salted, b"Server Key");
    Some(constant_time_eq(&mine_stored, &stored_key) && constant_time_eq(&mine_server, &server_key))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_verifiers_made_here_check_against_their_password() {
        for pw in ["clientpass", "p:a\\s*s w'o\"rd ü", "ｆｕｌｌ\u{00A0}width"] {
            let v = encrypt(&Secret::new(pw.to_string()), "r", Encryption::ScramSha256);
            assert_eq!(check(v.expose(), pw, "r"), Check::Matches, "{pw}");
            assert_eq!(check(v.expose(), "other", "r"), Check::Differs);
        }
    }

    #[test]
    fn a_verifier_postgresql_made_checks() {
        // `SET password_encryption = 'scram-sha-256'; CREATE ROLE x PASSWORD 'xyzzy'`
        // on PostgreSQL 15 stored this verifier.
        let stored = "SCRAM-SHA-256$4096:G9UWk29u9IPiceIYraLnGQ==$MnZ8zXZV1A7DTiiOwsfyGDVWwpoNGntqs9DTKcAfj20=:We6Mv5q+ybJa1bJIuHtEMuwdYn8vY0TZr5XtcZXElWE=";
        assert_eq!(check(stored, "xyzzy", "x"), Check::Matches);
        assert_eq!(check(stored, "xyzzz", "x"), Check::Differs);
    }

    #[test]
    fn only_md5_of_the_right_length_is_taken_for_md5() {
        let md5 = encrypt(&Secret::new("pw".to_string()), "alice", Encryption::Md5);
        assert_eq!(kind(md5.expose()), Some(Encryption::Md5));
        let not_md5 = "x".repeat(35);
        for stored in ["md5abc", not_md5.as_str()] {
            assert_eq!(kind(stored), None, "{stored}");
            assert_eq!(check(stored, "pw", "alice"), Check::Unknown, "{stored}");
        }
    }

    #[test]
    fn the_checker_remembers_each_result_apart_and_keeps_what_it_was_told() {
        let c = Checker::default();
        let v = encrypt(&Secret::new("pw".to_string()), "r", Encryption::ScramSha256);
        assert_eq!(c.check(v.expose(), "pw", "r"), Check::Matches);
        assert_eq!(c.check(v.expose(), "other", "r"), Check::Differs);
        assert_eq!(c.check(v.expose(), "pw", "r2"), Check::Matches);
        // A verifier trusted from its stamp is not derived again (this one
        // could not be), and stays trusted while other results come in.
        let trusted = "SCRAM-SHA-256$unreadable";
        assert_eq!(check(trusted, "pw", "r"), Check::Unknown);
        c.trust(trusted, "pw", "r");
        assert_eq!(c.check(v.expose(), "third", "r"), Check::Differs);
        assert_eq!(c.check(trusted, "pw", "r"), Check::Matches);
        assert_eq!(c.check(trusted, "other", "r"), Check::Unknown);
    }

    #[test]
    fn scram_iteration_counts_out_of_range_are_not_checked() {
        let good = encrypt(&Secret::new("pw".to_string()), "r", Encryption::ScramSha256);
        let rest = good.expose().split_once(':').unwrap().1;
        // No key derivation of zero rounds, nor one that would take hours.
        for count in ["0", "10000001", "4294967295"] {
            let stored = format!("SCRAM-SHA-256${count}:{rest}");
            assert_eq!(check(&stored, "pw", "r"), Check::Unknown, "{count}");
        }
        let stored = format!("SCRAM-SHA-256$4096:{rest}");
        assert_eq!(check(&stored, "pw", "r"), Check::Matches);
    }

    #[test]
    fn constant_time_comparison_sees_every_difference() {
        assert!(constant_time_eq(b"abc", b"abc"));
        // Differences that cancel out under XOR must not.
        assert!(!constant_time_eq(b"ab", b"ba"));
        assert!(!constant_time_eq(b"ab", b"abc"));
    }

    #[test]
    fn both_scram_keys_must_match() {
        let good = encrypt(&Secret::new("pw".to_string()), "r", Encryption::ScramSha256);
        let (head, keys) = good.expose().rsplit_once('$').unwrap();
        let (stored_key, server_key) = keys.split_once(':').unwrap();
        let other = encrypt(
            &Secret::new("other".to_string()),
            "r",
            Encryption::ScramSha256,
        );
        let (other_stored, other_server) = other
            .expose()
            .rsplit_once('$')
            .unwrap()
            .1
            .split_once(':')
            .unwrap();
        for (s, k) in [(other_stored, server_key), (stored_key, other_server)] {
            let mixed = format!("{head}${s}:{k}");
            assert_eq!(check(&mixed, "pw", "r"), Check::Differs, "{mixed}");
        }
    }

    #[test]
    fn md5_hashes_depend_on_the_role_name() {
        let v = encrypt(&Secret::new("pw".to_string()), "alice", Encryption::Md5);
        assert_eq!(v.expose().len(), 35);
        assert_eq!(check(v.expose(), "pw", "alice"), Check::Matches);
        assert_eq!(check(v.expose(), "pw", "bob"), Check::Differs);
        assert_eq!(check("plaintext", "pw", "alice"), Check::Unknown);
        assert_eq!(
            check("SCRAM-SHA-256$garbage", "pw", "alice"),
            Check::Unknown
        );
    }
}
