//! `--auth FILE`: who may read the web view when it listens beyond loopback.
//!
//! The file holds one credential a line (docs/serve.md); `#` starts a comment:
//!
//! ```text
//! token 6f1c0e2b9d8a47c3a1e5f0b2c4d6e8fa      # sent as "Authorization: Bearer <token>"
//! user alice sha256:<salt>:<hex sha256 of salt followed by the password>
//! ```
//!
//! Every comparison is of SHA-256 digests in constant time ([`subtle`]), and every
//! credential is checked whatever the outcome of the others, so the time taken says
//! nothing about which part of a guess was right.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A token shorter than this is refused: it could be guessed over the network.
pub const MIN_TOKEN: usize = 16;

#[derive(Debug, Clone)]
enum Cred {
    /// SHA-256 of the token.
    Token([u8; 32]),
    User {
        name: [u8; 32],
        salt: Vec<u8>,
        hash: [u8; 32],
    },
}

/// The credentials of an auth file.
#[derive(Debug, Clone)]
pub struct Auth {
    creds: Vec<Cred>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("line {line}: {why}")]
    Bad { line: usize, why: String },
    #[error("no credential in the file (lines `token T` or `user NAME sha256:SALT:HEX`)")]
    Empty,
}

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The line a user's entry takes for `password` with `salt` (for docs and tests).
pub fn user_line(name: &str, salt: &str, password: &str) -> String {
    let hex: String = sha(&[salt.as_bytes(), password.as_bytes()])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("user {name} sha256:{salt}:{hex}")
}

impl Auth {
    /// Parses an auth file's text. Errors name the line, never its secret.
    pub fn parse(text: &str) -> Result<Auth, AuthError> {
        let mut creds = Vec::new();
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
                ["user", name, hash] => {
                    let mut parts = hash.splitn(3, ':');
                    let (Some("sha256"), Some(salt), Some(hex)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        return Err(bad("the password hash is not sha256:SALT:HEX"));
                    };
                    let hash = unhex(hex).ok_or_else(|| bad("the hash is not 64 hex digits"))?;
                    if name.contains(':') {
                        return Err(bad("a user name cannot hold ':'"));
                    }
                    creds.push(Cred::User {
                        name: sha(&[name.as_bytes()]),
                        salt: salt.as_bytes().to_vec(),
                        hash,
                    });
                }
                _ => return Err(bad("expected `token TOKEN` or `user NAME sha256:SALT:HEX`")),
            }
        }
        if creds.is_empty() {
            return Err(AuthError::Empty);
        }
        Ok(Auth { creds })
    }

    /// Whether users (not only tokens) are configured: then a refusal asks the browser
    /// for a password.
    pub fn has_users(&self) -> bool {
        self.creds.iter().any(|c| matches!(c, Cred::User { .. }))
    }

    /// Whether an `Authorization` header value is accepted.
    pub fn check(&self, header: Option<&[u8]>) -> bool {
        let Some(header) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
            return false;
        };
        let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
        let value = value.trim();
        let mut ok = subtle::Choice::from(0u8);
        if scheme.eq_ignore_ascii_case("bearer") {
            let given = sha(&[value.as_bytes()]);
            for c in &self.creds {
                if let Cred::Token(t) = c {
                    ok |= t.ct_eq(&given);
                }
            }
        } else if scheme.eq_ignore_ascii_case("basic") {
            let Some(decoded) = base64_decode(value) else {
                return false;
            };
            let text = String::from_utf8_lossy(&decoded);
            let Some((user, pass)) = text.split_once(':') else {
                return false;
            };
            let user = sha(&[user.as_bytes()]);
            for c in &self.creds {
                if let Cred::User { name, salt, hash } = c {
                    let h = sha(&[salt, pass.as_bytes()]);
                    ok |= name.ct_eq(&user) & hash.ct_eq(&h);
                }
            }
        }
        ok.into()
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

    #[test]
    fn tokens_and_users_are_checked() {
        let file = format!(
            "# team\ntoken {TOKEN}\n{}\n",
            user_line("alice", "s4lt", "correct horse")
        );
        let a = Auth::parse(&file).unwrap();
        assert!(a.has_users());
        assert!(a.check(Some(format!("Bearer {TOKEN}").as_bytes())));
        assert!(a.check(Some(format!("bearer  {TOKEN} ").as_bytes())));
        assert!(!a.check(Some(b"Bearer 0123456789abcdef012")));
        assert!(!a.check(None));
        let basic = |u: &str| format!("Basic {}", b64(u));
        assert!(a.check(Some(basic("alice:correct horse").as_bytes())));
        assert!(!a.check(Some(basic("alice:wrong").as_bytes())));
        assert!(!a.check(Some(basic("bob:correct horse").as_bytes())));
        assert!(!a.check(Some(basic(&format!("x:{TOKEN}")).as_bytes())));
        assert!(!a.check(Some(b"Basic !!!")));
        assert!(!a.check(Some(b"\xff\xfe")));
        assert_eq!(base64_decode(&b64("a:b")).unwrap(), b"a:b");
    }

    #[test]
    fn the_documented_user_line_is_right() {
        let line = user_line("alice", "Xq3v9LpT", "correct horse battery");
        assert!(include_str!("../../../docs/serve.md").contains(&line));
        let a = Auth::parse(&line).unwrap();
        // "alice:correct horse battery"
        assert!(a.check(Some(b"Basic YWxpY2U6Y29ycmVjdCBob3JzZSBiYXR0ZXJ5")));
    }

    #[test]
    fn bad_files_are_refused_without_their_secrets() {
        let e = Auth::parse("token tiny1").unwrap_err();
        assert!(matches!(e, AuthError::Bad { line: 1, .. }));
        assert!(!e.to_string().contains("tiny1"));
        assert_eq!(Auth::parse("# nothing\n\n").unwrap_err(), AuthError::Empty);
        assert!(Auth::parse("user bob plain:secret").is_err());
        assert!(Auth::parse("user bob sha256:salt:abcd").is_err());
        assert!(Auth::parse("password hunter2").is_err());
    }
}
