//! `--auth FILE`: who may read the web view when it listens beyond loopback.
//!
//! The file holds one credential a line (docs/serve.md); `#` starts a comment:
//!
//! ```text
//! token 6f1c0e2b9d8a47c3a1e5f0b2c4d6e8fa      # sent as "Authorization: Bearer <token>"
//! user alice $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>   # HTTP Basic
//! ```
//!
//! Tokens are long random strings: they are kept as SHA-256 digests and compared in
//! constant time ([`subtle`]), every one of them whatever the others gave. Passwords are
//! chosen by people, so they are kept as Argon2id hashes (PHC strings, made by
//! [`hash_password`] / `portolan serve --hash-password NAME`): slow and memory-hard by
//! design, so a stolen file cannot be tried quickly. Verifying one takes tens of
//! milliseconds: callers run [`Auth::check`] off the async threads when
//! [`Auth::needs_slow_check`] says so. A name that is not in the file is verified against
//! a hash of the same cost, so the time taken does not tell which names exist.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
/// Argon2's cost parameters, for [`user_line_with`].
pub use argon2::Params;
use argon2::{Algorithm, Argon2, Version};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A token shorter than this is refused: it could be guessed over the network.
pub const MIN_TOKEN: usize = 16;

#[derive(Debug, Clone)]
enum Cred {
    /// SHA-256 of the token.
    Token([u8; 32]),
    User {
        /// SHA-256 of the name.
        name: [u8; 32],
        /// The Argon2id PHC string (checked to parse when the file is read).
        phc: String,
    },
}

/// The credentials of an auth file.
#[derive(Debug, Clone)]
pub struct Auth {
    creds: Vec<Cred>,
    /// The first user's cost, when there are users...
    decoy_params: Option<Params>,
    /// ... and a hash of nothing anyone knows at that cost: what an unknown name's
    /// password is verified against. Made on first use or by [`Auth::prepare`] (parsing
    /// hashes nothing, so a file with an absurd cost costs nothing until it is used).
    decoy: std::sync::OnceLock<Option<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("line {line}: {why}")]
    Bad { line: usize, why: String },
    #[error("no credential in the file (lines `token T` or `user NAME $argon2id$...`)")]
    Empty,
    #[error("{0}")]
    Hash(String),
}

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Whether `name` can stand in a user line (and a Basic credential).
fn good_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == ':' || c == '#' || c.is_whitespace() || c.is_control())
}

/// The Argon2id hash (PHC string) of `password` with a new random salt and `params`.
fn hash_with(password: &str, params: Params) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// The auth file line for user `name` with `password`: Argon2id at the crate's default
/// cost (OWASP's: 19 MiB, 2 passes), a new random salt.
pub fn hash_password(name: &str, password: &str) -> Result<String, AuthError> {
    user_line_with(name, password, Params::default())
}

/// [`hash_password`] at another cost (tests use a cheap one).
pub fn user_line_with(name: &str, password: &str, params: Params) -> Result<String, AuthError> {
    if !good_name(name) {
        return Err(AuthError::Hash(
            "a user name cannot be empty nor hold ':', '#', spaces or control characters".into(),
        ));
    }
    if password.is_empty() {
        return Err(AuthError::Hash("the password is empty".into()));
    }
    Ok(format!("user {name} {}", hash_with(password, params)?))
}

impl Auth {
    /// Parses an auth file's text. Errors name the line, never its secret.
    pub fn parse(text: &str) -> Result<Auth, AuthError> {
        let mut creds = Vec::new();
        let mut decoy_params = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let bad = |why: &str| AuthError::Bad {
                line,
                why: why.into(),
            };
            let content = raw.split('#').next().unwrap_or("").trim();
            let words: Vec<&str> = content.split_whitespace().collect();
            match words.as_slice() {
                [] => {}
                ["token", t] => {
                    if t.len() < MIN_TOKEN {
                        return Err(bad("the token is too short (16 characters at least)"));
                    }
                    creds.push(Cred::Token(sha(&[t.as_bytes()])));
                }
                ["user", name, phc] => {
                    if !good_name(name) {
                        return Err(bad("a user name cannot hold ':'"));
                    }
                    let parsed = PasswordHash::new(phc).map_err(|_| {
                        bad("the password hash is not a PHC string ($argon2id$v=19$m=...)")
                    })?;
                    if parsed.algorithm != Algorithm::Argon2id.ident() {
                        return Err(bad("the password hash is not Argon2id ($argon2id$...)"));
                    }
                    let params = Params::try_from(&parsed)
                        .map_err(|_| bad("the Argon2id parameters are out of range"))?;
                    if parsed.salt.is_none() || parsed.hash.is_none() {
                        return Err(bad("the password hash has no salt or no hash"));
                    }
                    decoy_params.get_or_insert(params);
                    creds.push(Cred::User {
                        name: sha(&[name.as_bytes()]),
                        phc: (*phc).to_string(),
                    });
                }
                _ => {
                    return Err(bad("expected `token TOKEN` or `user NAME $argon2id$...` \
                         (portolan serve --hash-password NAME makes one)"))
                }
            }
        }
        if creds.is_empty() {
            return Err(AuthError::Empty);
        }
        Ok(Auth {
            creds,
            decoy_params,
            decoy: std::sync::OnceLock::new(),
        })
    }

    /// Makes the decoy hash now (a server does it before its first request, so the first
    /// unknown name is not slower than the next ones).
    pub fn prepare(&self) -> Result<(), AuthError> {
        if let Some(p) = &self.decoy_params {
            if self.decoy.get().is_none() {
                let decoy = hash_with("portolan: no such user", p.clone())?;
                let _ = self.decoy.set(Some(decoy));
            }
        }
        Ok(())
    }

    fn decoy(&self) -> Option<&String> {
        self.decoy
            .get_or_init(|| {
                let p = self.decoy_params.clone()?;
                hash_with("portolan: no such user", p).ok()
            })
            .as_ref()
    }

    /// Whether users (not only tokens) are configured: then a refusal asks the browser
    /// for a password.
    pub fn has_users(&self) -> bool {
        self.creds.iter().any(|c| matches!(c, Cred::User { .. }))
    }

    /// Whether checking this `Authorization` header value verifies a password (slow:
    /// run [`Auth::check`] on a blocking thread).
    pub fn needs_slow_check(&self, header: Option<&[u8]>) -> bool {
        self.decoy_params.is_some()
            && header.is_some_and(|h| {
                h.get(..6)
                    .is_some_and(|s| s.eq_ignore_ascii_case(b"basic "))
            })
    }

    /// Whether an `Authorization` header value is accepted.
    pub fn check(&self, header: Option<&[u8]>) -> bool {
        let Some(header) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
            return false;
        };
        let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
        let value = value.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            let given = sha(&[value.as_bytes()]);
            let mut ok = subtle::Choice::from(0u8);
            for c in &self.creds {
                if let Cred::Token(t) = c {
                    ok |= t.ct_eq(&given);
                }
            }
            ok.into()
        } else if scheme.eq_ignore_ascii_case("basic") {
            let Some(decoded) = base64_decode(value) else {
                return false;
            };
            let text = String::from_utf8_lossy(&decoded);
            let Some((user, pass)) = text.split_once(':') else {
                return false;
            };
            let user = sha(&[user.as_bytes()]);
            let mut found = None;
            for c in &self.creds {
                if let Cred::User { name, phc } = c {
                    if bool::from(name.ct_eq(&user)) {
                        found = Some(phc);
                    }
                }
            }
            // An unknown name costs a verification too.
            let Some(phc) = found.or_else(|| self.decoy()) else {
                return false;
            };
            let verified = PasswordHash::new(phc).is_ok_and(|h| {
                Argon2::default()
                    .verify_password(pass.as_bytes(), &h)
                    .is_ok()
            });
            verified && found.is_some()
        } else {
            false
        }
    }
}

/// Standard base64 (with or without padding); None on any other byte.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123";

    fn b64(s: &str) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in s.as_bytes().chunks(3) {
            let n = chunk.iter().fold(0u32, |a, b| (a << 8) | *b as u32) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    /// A cheap cost for tests (the default is for real files).
    fn cheap() -> Params {
        Params::new(256, 1, 1, None).unwrap()
    }

    #[test]
    fn tokens_and_users_are_checked() {
        let file = format!(
            "# team\ntoken {TOKEN}\n{}\n",
            user_line_with("alice", "correct horse", cheap()).unwrap()
        );
        let a = Auth::parse(&file).unwrap();
        assert!(a.has_users());
        assert!(a.check(Some(format!("Bearer {TOKEN}").as_bytes())));
        assert!(a.check(Some(format!("bearer  {TOKEN} ").as_bytes())));
        assert!(!a.needs_slow_check(Some(format!("Bearer {TOKEN}").as_bytes())));
        assert!(!a.check(Some(b"Bearer 0123456789abcdef012")));
        assert!(!a.check(None));
        let basic = |u: &str| format!("Basic {}", b64(u));
        assert!(a.needs_slow_check(Some(basic("alice:x").as_bytes())));
        assert!(a.check(Some(basic("alice:correct horse").as_bytes())));
        assert!(!a.check(Some(basic("alice:wrong").as_bytes())));
        assert!(!a.check(Some(basic("alice:").as_bytes())));
        assert!(!a.check(Some(basic("bob:correct horse").as_bytes())));
        // The decoy that unknown names are verified against lets nothing in.
        assert!(!a.check(Some(basic("bob:portolan: no such user").as_bytes())));
        assert!(!a.check(Some(basic(&format!("x:{TOKEN}")).as_bytes())));
        assert!(!a.check(Some(b"Basic !!!")));
        assert!(!a.check(Some(b"\xff\xfe")));
        assert_eq!(base64_decode(&b64("a:b")).unwrap(), b"a:b");
        // Tokens only: nothing is slow, and Basic is refused.
        let t = Auth::parse(&format!("token {TOKEN}")).unwrap();
        assert!(!t.needs_slow_check(Some(basic("alice:correct horse").as_bytes())));
        assert!(!t.check(Some(basic("alice:correct horse").as_bytes())));
    }

    #[test]
    fn a_new_line_is_argon2id_salted_afresh() {
        let a = user_line_with("alice", "pw", cheap()).unwrap();
        let b = user_line_with("alice", "pw", cheap()).unwrap();
        assert!(
            a.starts_with("user alice $argon2id$v=19$m=256,t=1,p=1$"),
            "{a}"
        );
        assert_ne!(a, b);
        assert!(hash_password("al ice", "pw").is_err());
        assert!(hash_password("al:ice", "pw").is_err());
        assert!(hash_password("alice", "").is_err());
    }

    #[test]
    fn the_documented_user_line_is_right() {
        let doc = include_str!("../../../docs/serve.md");
        let line = doc
            .lines()
            .find(|l| l.starts_with("user alice $argon2id$v=19$m=19456,t=2,p=1$"))
            .expect("docs/serve.md shows a user line at the default cost");
        let a = Auth::parse(line).unwrap();
        // "alice:correct horse battery"
        assert!(a.check(Some(b"Basic YWxpY2U6Y29ycmVjdCBob3JzZSBiYXR0ZXJ5")));
        assert!(!a.check(Some(b"Basic YWxpY2U6Y29ycmVjdCBob3JzZQ==")));
    }

    #[test]
    fn bad_files_are_refused_without_their_secrets() {
        let e = Auth::parse("token tiny1").unwrap_err();
        assert!(matches!(e, AuthError::Bad { line: 1, .. }));
        assert!(!e.to_string().contains("tiny1"));
        assert_eq!(Auth::parse("# nothing\n\n").unwrap_err(), AuthError::Empty);
        assert!(Auth::parse("user bob plain:secret").is_err());
        // The old fast-hash form is gone.
        assert!(Auth::parse(
            "user bob sha256:s:80c9159a4ac230d77d442e650951c1742f3494d1e911a9a8a5118a4f16268bf5"
        )
        .is_err());
        // Argon2i and Argon2d are not Argon2id.
        let id = user_line_with("bob", "pw", cheap()).unwrap();
        assert!(Auth::parse(&id.replace("$argon2id$", "$argon2i$")).is_err());
        assert!(Auth::parse(&id.replace("$argon2id$", "$argon2d$")).is_err());
        assert!(Auth::parse("user bob $argon2id$v=19$m=256,t=1,p=1").is_err());
        assert!(Auth::parse("password hunter2").is_err());
    }
}
