//! Console accounts and sessions.
//!
//! Trees (declared here only):
//! - `console_users`: `String login` → [`User`] (argon2id PHC hash, role);
//! - `console_sessions`: `String session id` → [`Session`] (user, CSRF token, expiry).
//!
//! Passwords are hashed with argon2id (random salt, default parameters); verification runs
//! on a blocking thread (it is deliberately slow). Session ids and CSRF tokens are 32 random
//! bytes. Failed logins slow down further attempts (`throttle`: per account and address,
//! and per address, failures only, bounded in memory).

mod throttle;
pub mod tools;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

use crate::store::trees;
use crate::store::{self, Record, Store, Tree};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Handler,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "handler" => Some(Role::Handler),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Handler => "处理人员",
            Role::Admin => "管理员",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub login: String,
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    pub created_at: i64,
}

impl Record for User {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub login: String,
    pub role: Role,
    pub csrf: String,
    pub expires_at: i64,
}

impl Record for Session {}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("用户名或密码错误")]
    BadCredentials,
    #[error("登录失败次数过于频繁，请 {retry_after_secs} 秒后再试")]
    RateLimited { retry_after_secs: u64 },
    #[error("用户名只能包含字母、数字、点、下划线和短横线（2–32 个字符）")]
    BadLogin,
    #[error("密码至少 8 个字符")]
    WeakPassword,
    #[error("用户已存在")]
    Exists,
    #[error("存储错误，请稍后重试")]
    Storage(#[source] std::sync::Arc<store::Error>),
    /// argon2 refused to hash (its reason kept for the log).
    #[error("服务器内部错误，请稍后重试")]
    Hashing(String),
}

impl From<store::Error> for AuthError {
    fn from(e: store::Error) -> Self {
        AuthError::Storage(std::sync::Arc::new(e))
    }
}

fn valid_login(login: &str) -> bool {
    (2..=32).contains(&login.len())
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Hash a password (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hashing(e.to_string()))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The account service.
#[derive(Debug)]
pub struct Accounts {
    users: Tree<String, User>,
    sessions: Tree<String, Session>,
    session_ttl: Duration,
    throttle: Mutex<throttle::Throttle>,
    /// A hash to verify against when the login does not exist, so timing does not reveal
    /// which logins exist.
    decoy: String,
}

impl Accounts {
    pub fn open(
        store: &Store,
        session_ttl: Duration,
        failures_before_lock: u32,
    ) -> Result<Accounts, AuthError> {
        Ok(Accounts {
            users: store.tree(&trees::CONSOLE_USERS)?,
            sessions: store.tree(&trees::CONSOLE_SESSIONS)?,
            session_ttl,
            throttle: Mutex::new(throttle::Throttle::new(failures_before_lock)),
            decoy: hash_password(&crate::util::random_hex(16))?,
        })
    }

    /// Create (or, with `replace`, reset) an account.
    pub fn put_user(
        &self,
        login: &str,
        role: Role,
        password: &str,
        replace: bool,
    ) -> Result<User, AuthError> {
        if !valid_login(login) {
            return Err(AuthError::BadLogin);
        }
        if password.chars().count() < 8 {
            return Err(AuthError::WeakPassword);
        }
        let user = User {
            login: login.to_owned(),
            role,
            password_hash: hash_password(password)?,
            created_at: crate::util::unix_millis(),
        };
        if replace {
            self.users.insert(&user.login, &user)?;
        } else if !self.users.insert_new(&user.login, &user)? {
            return Err(AuthError::Exists);
        }
        Ok(user)
    }

    pub fn users(&self) -> Result<Vec<User>, AuthError> {
        Ok(self
            .users
            .iter()
            .map(|r| r.map(|(_, u)| u))
            .collect::<store::Result<Vec<_>>>()?)
    }

    pub fn user(&self, login: &str) -> Result<Option<User>, AuthError> {
        Ok(self.users.get(&login.to_owned())?)
    }

    /// Check a password and open a session. Blocking (argon2): call from a blocking task.
    pub fn login(
        &self,
        login: &str,
        password: &str,
        client: &str,
    ) -> Result<(String, Session), AuthError> {
        // Only names no longer than a valid login can be an account (and a key).
        let user = if valid_login(login) {
            self.users.get(&login.to_owned())?
        } else {
            None
        };
        let keys = throttle::Keys::new(user.as_ref().map(|u| u.login.as_str()), client);
        let throttle = || self.throttle.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(wait) = throttle().check(&keys, Instant::now()) {
            return Err(AuthError::RateLimited {
                retry_after_secs: wait.as_millis().div_ceil(1000) as u64,
            });
        }
        let hash = user
            .as_ref()
            .map_or(self.decoy.as_str(), |u| u.password_hash.as_str());
        let ok = verify_password(password, hash);
        let Some(user) = user.filter(|_| ok) else {
            if let Some(lock) = throttle().fail(&keys, Instant::now()) {
                // The audit line: once per lock, not per refused attempt.
                let account = valid_login(login).then_some(login);
                tracing::warn!(
                    client,
                    account,
                    lock_secs = lock.as_secs(),
                    "console login locked after repeated failures"
                );
            }
            return Err(AuthError::BadCredentials);
        };
        throttle().succeed(&keys);
        let id = crate::util::random_hex(32);
        let session = Session {
            login: user.login.clone(),
            role: user.role,
            csrf: crate::util::random_hex(32),
            expires_at: crate::util::unix_millis() + self.session_ttl.as_millis() as i64,
        };
        self.sessions.insert(&id, &session)?;
        tracing::info!(user = %user.login, "console login");
        Ok((id, session))
    }

    /// The live session for `id`, if any (expired ones are removed).
    pub fn session(&self, id: &str) -> Result<Option<Session>, AuthError> {
        let key = id.to_owned();
        match self.sessions.get(&key)? {
            Some(s) if s.expires_at > crate::util::unix_millis() => Ok(Some(s)),
            Some(_) => {
                self.sessions.remove(&key)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    pub fn logout(&self, id: &str) -> Result<(), AuthError> {
        self.sessions.remove(&id.to_owned())?;
        Ok(())
    }

    /// Drop expired sessions (periodic).
    pub fn sweep(&self) -> Result<usize, AuthError> {
        let now = crate::util::unix_millis();
        let mut n = 0;
        for item in self.sessions.iter() {
            let (id, s) = item?;
            if s.expires_at <= now {
                self.sessions.remove(&id)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(attempts: u32) -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 8 << 20).expect("store");
        let a = Accounts::open(&store, Duration::from_secs(3600), attempts).expect("accounts");
        (dir, a)
    }

    #[test]
    fn login_logout_and_bad_passwords() {
        let (_d, a) = accounts(10);
        a.put_user("li.handler", Role::Handler, "correct horse", false)
            .expect("create");
        assert!(matches!(
            a.put_user("li.handler", Role::Admin, "another one", false),
            Err(AuthError::Exists)
        ));
        assert!(matches!(
            a.put_user("x", Role::Admin, "longenough", false),
            Err(AuthError::BadLogin)
        ));
        assert!(matches!(
            a.put_user("bob", Role::Admin, "short", false),
            Err(AuthError::WeakPassword)
        ));
        let user = a.user("li.handler").expect("read").expect("exists");
        assert!(
            user.password_hash.starts_with("$argon2id$"),
            "never stored in clear"
        );
        assert!(matches!(
            a.login("li.handler", "wrong", "ip1").map(|_| ()),
            Err(AuthError::BadCredentials)
        ));
        assert!(matches!(
            a.login("nobody", "whatever", "ip1").map(|_| ()),
            Err(AuthError::BadCredentials)
        ));
        let (id, s) = a
            .login("li.handler", "correct horse", "ip1")
            .expect("login");
        assert_eq!(s.role, Role::Handler);
        assert_eq!(
            a.session(&id).expect("read").expect("live").login,
            "li.handler"
        );
        a.logout(&id).expect("logout");
        assert_eq!(a.session(&id).expect("read"), None);
    }

    #[test]
    fn attempts_are_rate_limited() {
        let (_d, a) = accounts(3);
        a.put_user("wang", Role::Admin, "password1", false)
            .expect("create");
        for _ in 0..3 {
            assert!(matches!(
                a.login("wang", "nope", "ip9").map(|_| ()),
                Err(AuthError::BadCredentials)
            ));
        }
        assert!(matches!(
            a.login("wang", "password1", "ip9").map(|_| ()),
            Err(AuthError::RateLimited {
                retry_after_secs: 30
            })
        ));
        // Another address is not locked out by them.
        assert!(a.login("wang", "password1", "ip10").is_ok());
    }
}
