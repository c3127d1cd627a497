//! Who is asking and what they may do: sessions (`Authorization: Bearer <token>`), roles, and
//! the endpoints that create sessions — first-time setup, login, logout, `me`.
//!
//! A token is 32 random bytes in base64, handed out once; the database keeps only its SHA-256.
//! Sessions slide: one unused for [`SESSION_IDLE_LIMIT`] expires, except an API-only user's.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use base64::Engine as _;
use flotilla_engine::TeamId;
use flotilla_storage::admin::{HostScope, NewUser, Roles, User};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::error::{FleetError, FleetJson, ok};
use super::password;
use super::users::{UserJson, check_email, check_name};
use crate::state::SharedState;

/// A session unused for this long (5 days, Fleet's default) has expired.
pub const SESSION_IDLE_LIMIT: i64 = 5 * 24 * 3600;

/// A session's last use is written at most this often (seconds).
const TOUCH_GRANULARITY: i64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Maintainer,
    Observer,
    ObserverPlus,
}

impl Role {
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "admin" => Some(Role::Admin),
            "maintainer" => Some(Role::Maintainer),
            "observer" => Some(Role::Observer),
            "observer_plus" => Some(Role::ObserverPlus),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Maintainer => "maintainer",
            Role::Observer => "observer",
            Role::ObserverPlus => "observer_plus",
        }
    }

    fn writes(self) -> bool {
        matches!(self, Role::Admin | Role::Maintainer)
    }
}

/// The authenticated user of a request.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub user: User,
}

impl Viewer {
    fn global_role(&self) -> Option<Role> {
        self.user.global_role.as_deref().and_then(Role::parse)
    }

    pub fn is_global_admin(&self) -> bool {
        self.global_role() == Some(Role::Admin)
    }

    /// The viewer's role for objects of `team` (`None`: global objects). A global role applies
    /// everywhere; a team role only to that team's objects.
    pub fn role_for(&self, team: Option<TeamId>) -> Option<Role> {
        if let Some(role) = self.global_role() {
            return Some(role);
        }
        let team = team?;
        self.user
            .teams
            .iter()
            .find(|t| t.team == team)
            .and_then(|t| Role::parse(&t.role))
    }

    pub fn can_read(&self, team: Option<TeamId>) -> bool {
        self.role_for(team).is_some()
    }

    /// Admins and maintainers write.
    pub fn can_write(&self, team: Option<TeamId>) -> bool {
        self.role_for(team).is_some_and(Role::writes)
    }

    /// Admins, maintainers and observer+ run any query; observers only those saved with
    /// `observer_can_run`.
    pub fn can_run_queries(&self, team: Option<TeamId>, observer_can_run: bool) -> bool {
        match self.role_for(team) {
            Some(Role::Admin | Role::Maintainer | Role::ObserverPlus) => true,
            Some(Role::Observer) => observer_can_run,
            None => false,
        }
    }

    /// Whether the viewer holds any role at all (global or on some team).
    pub fn has_any_role(&self) -> bool {
        self.global_role().is_some()
            || self
                .user
                .teams
                .iter()
                .any(|t| Role::parse(&t.role).is_some())
    }

    /// The hosts the viewer may see: all with a global role, else those of their teams.
    pub fn host_scope(&self) -> HostScope {
        if self.global_role().is_some() {
            return HostScope::All;
        }
        HostScope::Teams(
            self.user
                .teams
                .iter()
                .filter(|t| Role::parse(&t.role).is_some())
                .map(|t| t.team)
                .collect(),
        )
    }

    /// Teams on which the viewer writes (every team for a global admin or maintainer: `None`).
    pub fn writable_teams(&self) -> Option<Vec<TeamId>> {
        if self.global_role().is_some_and(Role::writes) {
            return None;
        }
        Some(
            self.user
                .teams
                .iter()
                .filter(|t| Role::parse(&t.role).is_some_and(Role::writes))
                .map(|t| t.team)
                .collect(),
        )
    }

    /// `Ok` if `allowed`, else 403.
    pub fn require(allowed: bool) -> Result<(), FleetError> {
        if allowed {
            Ok(())
        } else {
            Err(FleetError::Forbidden)
        }
    }
}

/// The bearer token of a request: `Authorization: Bearer <token>`, scheme case-insensitive.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("Bearer") && !token.is_empty()).then_some(token)
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

/// Whether a session last used at `accessed_at` has expired at `now`.
pub fn session_expired(user: &User, accessed_at: i64, now: i64) -> bool {
    !user.api_only && now - accessed_at > SESSION_IDLE_LIMIT
}

impl FromRequestParts<SharedState> for Viewer {
    type Rejection = FleetError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or_else(|| {
            FleetError::Unauthorized("missing `Authorization: Bearer <token>` header".into())
        })?;
        viewer_for_token(state, token).await
    }
}

/// The user a session token belongs to, refreshing the session's sliding expiry. Shared by
/// the `Authorization: Bearer` extractor and the results websocket's in-band `auth`.
pub async fn viewer_for_token(state: &SharedState, token: &str) -> Result<Viewer, FleetError> {
    let hash = token_hash(token);
    let now = flotilla_engine::unix_now();
    let Some((user, accessed_at)) = state.admin.session(&hash).await? else {
        return Err(FleetError::Unauthorized("invalid session".into()));
    };
    if session_expired(&user, accessed_at, now) {
        state.admin.delete_session(&hash).await?;
        return Err(FleetError::Unauthorized("session expired".into()));
    }
    if now - accessed_at >= TOUCH_GRANULARITY {
        state.admin.touch_session(&hash, now).await?;
    }
    Ok(Viewer { user })
}

/// The client's address as the server's socket saw it (`None` when served without one, as in
/// router tests). Behind a load balancer this is the balancer's address.
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

/// Starts a session for `user`; returns the token.
async fn start_session(state: &SharedState, user: &User, now: i64) -> Result<String, FleetError> {
    let token = new_token();
    state
        .admin
        .create_session(user.id, &token_hash(&token), now)
        .await?;
    Ok(token)
}

#[derive(Deserialize)]
pub struct LoginBody {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// `POST /login`: `{"user", "token"}`. Unknown email and wrong password fail alike, in about
/// the same time.
pub async fn login(
    State(state): State<SharedState>,
    ClientIp(ip): ClientIp,
    FleetJson(body): FleetJson<LoginBody>,
) -> Result<Response, FleetError> {
    let email = body.email.trim();
    state
        .login_limiter
        .check(email, ip)
        .map_err(|wait| FleetError::RateLimited {
            retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        })?;
    let found = state.admin.user_by_email(email).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let valid = password::verify(body.password, hash).await;
    let Some(user) = user.filter(|u| valid && u.enabled) else {
        tracing::info!(ip = ?ip, "failed admin login");
        return Err(FleetError::Unauthorized("Authentication failed".into()));
    };
    let now = flotilla_engine::unix_now();
    let token = start_session(&state, &user, now).await?;
    let public_ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
    super::record_activity(
        &state,
        Some(user.id),
        "user_logged_in",
        json!({ "public_ip": public_ip }),
        now,
    )
    .await;
    Ok(ok(&json!({
        "user": UserJson::from(&user),
        "token": token,
        "available_teams": [],
    })))
}

/// `POST /logout`: ends the session of the token presented.
pub async fn logout(
    State(state): State<SharedState>,
    _viewer: Viewer,
    headers: HeaderMap,
) -> Result<Response, FleetError> {
    if let Some(token) = bearer_token(&headers) {
        state.admin.delete_session(&token_hash(token)).await?;
    }
    Ok(ok(&json!({})))
}

/// `GET /me`.
pub async fn me(viewer: Viewer) -> Response {
    ok(&json!({ "user": UserJson::from(&viewer.user), "available_teams": [] }))
}

#[derive(Deserialize)]
pub struct SetupBody {
    admin: Option<SetupAdmin>,
    #[serde(default)]
    org_info: serde_json::Value,
    #[serde(default)]
    server_url: Option<String>,
}

#[derive(Deserialize)]
struct SetupAdmin {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

fn setup_done() -> FleetError {
    FleetError::Conflict("setup has already been completed: a user exists".into())
}

/// `POST /api/v1/setup`: creates the first global admin and logs them in. Refused (409) once
/// any user exists.
pub async fn setup(
    State(state): State<SharedState>,
    FleetJson(body): FleetJson<SetupBody>,
) -> Result<Response, FleetError> {
    if state.admin.user_count().await? > 0 {
        return Err(setup_done());
    }
    let admin = body.admin.ok_or_else(|| {
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
    let user = state
        .admin
        .create_first_user(&new, now)
        .await?
        .ok_or_else(setup_done)?;
    let token = start_session(&state, &user, now).await?;
    super::record_activity(
        &state,
        Some(user.id),
        "created_user",
        json!({ "user_id": user.id.0, "user_name": user.name, "user_email": user.email }),
        now,
    )
    .await;
    tracing::info!(email = %user.email, "first admin created by setup");
    Ok(ok(&json!({
        "admin": UserJson::from(&user),
        "org_info": body.org_info,
        "server_url": body.server_url,
        "token": token,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_storage::admin::{UserId, UserTeam};

    fn viewer(global: Option<&str>, teams: &[(u64, &str)]) -> Viewer {
        Viewer {
            user: User {
                id: UserId(1),
                name: "v".into(),
                email: "v@example.com".into(),
                global_role: global.map(str::to_owned),
                teams: teams
                    .iter()
                    .map(|&(id, role)| UserTeam {
                        team: TeamId(id),
                        team_name: format!("team {id}"),
                        role: role.into(),
                    })
                    .collect(),
                api_only: false,
                enabled: true,
                force_password_reset: false,
                created_at: 0,
                updated_at: 0,
            },
        }
    }

    #[test]
    fn a_global_role_applies_everywhere() {
        let admin = viewer(Some("admin"), &[]);
        assert!(admin.is_global_admin());
        assert!(admin.can_write(None) && admin.can_write(Some(TeamId(9))));
        let observer = viewer(Some("observer"), &[]);
        assert!(observer.can_read(Some(TeamId(9))));
        assert!(!observer.can_write(None));
        assert!(!observer.can_run_queries(None, false));
        assert!(observer.can_run_queries(None, true));
        assert_eq!(observer.host_scope(), HostScope::All);
        let plus = viewer(Some("observer_plus"), &[]);
        assert!(plus.can_run_queries(Some(TeamId(1)), false));
        assert!(!plus.can_write(Some(TeamId(1))));
    }

    #[test]
    fn a_team_role_applies_to_that_team_only() {
        let member = viewer(None, &[(1, "maintainer"), (2, "observer")]);
        assert!(!member.is_global_admin());
        assert_eq!(member.role_for(Some(TeamId(1))), Some(Role::Maintainer));
        assert!(member.can_write(Some(TeamId(1))));
        assert!(!member.can_write(Some(TeamId(2))));
        assert!(member.can_read(Some(TeamId(2))));
        assert!(!member.can_read(Some(TeamId(3))));
        assert!(!member.can_read(None), "global objects need a global role");
        assert!(member.can_run_queries(Some(TeamId(1)), false));
        assert!(!member.can_run_queries(Some(TeamId(2)), false));
        assert_eq!(
            member.host_scope(),
            HostScope::Teams(vec![TeamId(1), TeamId(2)])
        );
        assert_eq!(member.writable_teams(), Some(vec![TeamId(1)]));
        let unknown = viewer(Some("gitops"), &[]);
        assert!(!unknown.can_read(None), "an unknown role grants nothing");
    }

    #[test]
    fn bearer_tokens_and_their_hashes() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "bEaReR abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
        let token = new_token();
        assert_eq!(token.len(), 44);
        assert_ne!(token, new_token());
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sessions_slide_and_api_only_ones_never_expire() {
        let mut user = viewer(Some("admin"), &[]).user;
        assert!(!session_expired(&user, 1_000, 1_000 + SESSION_IDLE_LIMIT));
        assert!(session_expired(&user, 1_000, 1_001 + SESSION_IDLE_LIMIT));
        user.api_only = true;
        assert!(!session_expired(
            &user,
            1_000,
            1_000 + 100 * SESSION_IDLE_LIMIT
        ));
    }
}
