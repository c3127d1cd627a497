//! Sessions: first-time setup, login, and the user a session token belongs to.
//!
//! A token is 32 random bytes in base64, handed out once; the database keeps only its SHA-256.
//! Sessions slide: one unused for [`SESSION_IDLE_LIMIT`] expires, except an API-only user's.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use flotilla_storage::admin::{NewUser, Roles, User, UserStore};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::ratelimit::LoginLimiter;
use super::{Effects, Role, Viewer, password};
use crate::fleet::error::FleetError;

/// A session unused for this long (5 days, Fleet's default) has expired.
pub const SESSION_IDLE_LIMIT: i64 = 5 * 24 * 3600;

/// A session's last use is written at most this often (seconds).
const TOUCH_GRANULARITY: i64 = 60;

/// A plausible email address, trimmed: 422 otherwise.
pub fn check_email(email: &str) -> Result<String, FleetError> {
    let email = email.trim();
    let plausible = email
        .split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !email.chars().any(char::is_whitespace);
    if plausible {
        Ok(email.to_owned())
    } else {
        Err(FleetError::validation(
            "email",
            "must be a valid email address",
        ))
    }
}

pub fn check_name(name: &str) -> Result<String, FleetError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(FleetError::validation("name", "cannot be empty"));
    }
    Ok(name.to_owned())
}

/// A fresh session token: 32 random bytes, standard base64.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// What the database keeps of a token: its SHA-256, in hex.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// Starts a session for `user` in `users`; returns the token (the store keeps its hash).
pub async fn start_session(
    users: &dyn UserStore,
    user: &User,
    now: i64,
) -> Result<String, FleetError> {
    let token = new_token();
    users
        .create_session(user.id, &token_hash(&token), now)
        .await?;
    Ok(token)
}

/// Whether a session last used at `accessed_at` has expired at `now`.
pub fn session_expired(user: &User, accessed_at: i64, now: i64) -> bool {
    !user.api_only && now - accessed_at > SESSION_IDLE_LIMIT
}

/// The first admin, as setup asks for them.
#[derive(Debug, Default)]
pub struct FirstAdmin {
    pub email: String,
    pub name: String,
    pub password: String,
}

fn setup_done() -> FleetError {
    FleetError::Conflict("setup has already been completed: a user exists".into())
}

pub struct SessionService {
    users: Arc<dyn UserStore>,
    /// Login attempts per email and per client address, in memory.
    login_limiter: LoginLimiter,
    effects: Effects,
}

impl SessionService {
    pub fn new(
        users: Arc<dyn UserStore>,
        login_limiter: LoginLimiter,
        effects: Effects,
    ) -> SessionService {
        SessionService {
            users,
            login_limiter,
            effects,
        }
    }

    /// Starts a session for `user`; returns the token.
    async fn start_session(&self, user: &User, now: i64) -> Result<String, FleetError> {
        start_session(self.users.as_ref(), user, now).await
    }

    /// The user a session token belongs to, refreshing the session's sliding expiry.
    pub async fn viewer_for_token(&self, token: &str) -> Result<Viewer, FleetError> {
        let hash = token_hash(token);
        let now = flotilla_engine::unix_now();
        let Some((user, accessed_at)) = self.users.session(&hash).await? else {
            return Err(FleetError::Unauthorized("invalid session".into()));
        };
        if session_expired(&user, accessed_at, now) {
            self.users.delete_session(&hash).await?;
            return Err(FleetError::Unauthorized("session expired".into()));
        }
        if now - accessed_at >= TOUCH_GRANULARITY {
            self.users.touch_session(&hash, now).await?;
        }
        Ok(Viewer {
            user,
            session: Some(hash),
        })
    }

    /// Ends the session of `token`.
    pub async fn logout(&self, token: &str) -> Result<(), FleetError> {
        self.users.delete_session(&token_hash(token)).await?;
        Ok(())
    }

    /// A new session for the user with this email and password: the user and the token.
    /// Unknown email and wrong password fail alike, in about the same time.
    pub async fn login(
        &self,
        email: &str,
        password: String,
        ip: Option<IpAddr>,
    ) -> Result<(User, String), FleetError> {
        let email = email.trim();
        self.login_limiter
            .check(email, ip)
            .map_err(|wait| FleetError::RateLimited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            })?;
        let found = self.users.user_by_email(email).await?;
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), Some(hash)),
            None => (None, None),
        };
        let valid = password::verify(password, hash).await;
        let Some(user) = user.filter(|u| valid && u.enabled) else {
            self.login_limiter.failed(email, ip);
            tracing::info!(ip = ?ip, "failed admin login");
            return Err(FleetError::Unauthorized("Authentication failed".into()));
        };
        let now = flotilla_engine::unix_now();
        let token = self.start_session(&user, now).await?;
        let public_ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
        self.effects
            .record_activity(
                Some(user.id),
                "user_logged_in",
                json!({ "public_ip": public_ip }),
                now,
            )
            .await;
        Ok((user, token))
    }

    /// Creates the first global admin and logs them in: the user and the token. Refused (409)
    /// once any user exists.
    pub async fn setup(&self, admin: Option<FirstAdmin>) -> Result<(User, String), FleetError> {
        if self.users.user_count().await? > 0 {
            return Err(setup_done());
        }
        let admin = admin.ok_or_else(|| {
            FleetError::validation(
                "admin",
                "the first admin's email, name and password are required",
            )
        })?;
        let email = check_email(&admin.email)?;
        let name = check_name(&admin.name)?;
        password::check_rules("password", &admin.password)?;
        let new = NewUser {
            name,
            email,
            password_hash: password::hash(admin.password).await?,
            roles: Roles::Global(Role::Admin.as_str().into()),
            api_only: false,
        };
        let now = flotilla_engine::unix_now();
        let user = self
            .users
            .create_first_user(&new, now)
            .await?
            .ok_or_else(setup_done)?;
        let token = self.start_session(&user, now).await?;
        self.effects
            .record_activity(
                Some(user.id),
                "created_user",
                json!({ "user_id": user.id.0, "user_name": user.name, "user_email": user.email }),
                now,
            )
            .await;
        tracing::info!(email = %user.email, "first admin created by setup");
        Ok((user, token))
    }
}
