//! Who is asking: the `Viewer` extractor (`Authorization: Bearer <token>`), and the endpoints
//! that create and end sessions — first-time setup, login, logout, `me`. Sessions themselves
//! (tokens, expiry, the login limiter) are [`crate::service::sessions`]'s.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::error::{FleetError, FleetJson, ok};
use super::users::UserJson;
use crate::service::Viewer;
use crate::service::sessions::FirstAdmin;
use crate::state::SharedState;

/// The bearer token of a request: `Authorization: Bearer <token>`, scheme case-insensitive.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("Bearer") && !token.is_empty()).then_some(token)
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

/// The user a session token belongs to (see [`crate::service::sessions`]). Shared by the
/// `Authorization: Bearer` extractor and the results websocket's in-band `auth`.
pub async fn viewer_for_token(state: &SharedState, token: &str) -> Result<Viewer, FleetError> {
    state.services.sessions.viewer_for_token(token).await
}

/// The load balancers whose `X-Forwarded-For` is believed (`--trusted-proxies`); none by
/// default. Put in every request's extensions by the router.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(pub std::sync::Arc<Vec<ipnet::IpNet>>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`: when `peer` is a trusted proxy, the nearest address in
    /// `X-Forwarded-For` that is not one (each proxy appends the address it saw, so the list is
    /// read from the right); otherwise `peer` itself, whatever the header says.
    pub fn client(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<_>>();
        for hop in forwarded.iter().rev() {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// The client's address: the socket's peer, or with `--trusted-proxies` the address a trusted
/// load balancer says it forwarded (`None` when served without a socket, as in router tests).
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let proxies = parts.extensions.get::<TrustedProxies>();
        Ok(ClientIp(match (peer, proxies) {
            (Some(peer), Some(proxies)) => Some(proxies.client(peer, &parts.headers)),
            (peer, _) => peer,
        }))
    }
}

#[cfg(test)]
mod client_ip_tests {
    use super::*;

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies(std::sync::Arc::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.168.1.1/32".parse().unwrap(),
        ]));
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.7, 10.1.2.3".parse().unwrap(),
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Through two trusted hops: the first untrusted address from the right.
        assert_eq!(
            proxies.client(ip("192.168.1.1"), &headers),
            ip("203.0.113.7")
        );
        // From an untrusted peer the header is the client's own say: ignored.
        assert_eq!(
            proxies.client(ip("198.51.100.1"), &headers),
            ip("198.51.100.1")
        );
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), &headers),
            ip("10.0.0.1")
        );
        // A hop that is not an address ends the walk at the last good one.
        headers.insert("x-forwarded-for", "junk, 10.9.9.9".parse().unwrap());
        assert_eq!(proxies.client(ip("10.0.0.1"), &headers), ip("10.9.9.9"));
    }
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
    let (user, token) = state
        .services
        .sessions
        .login(&body.email, body.password, ip)
        .await?;
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
        state.services.sessions.logout(token).await?;
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

/// `POST /api/v1/setup`: creates the first global admin and logs them in. Refused (409) once
/// any user exists.
pub async fn setup(
    State(state): State<SharedState>,
    FleetJson(body): FleetJson<SetupBody>,
) -> Result<Response, FleetError> {
    let admin = body.admin.map(|admin| FirstAdmin {
        email: admin.email,
        name: admin.name,
        password: admin.password,
    });
    let (user, token) = state.services.sessions.setup(admin).await?;
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
    use crate::service::sessions::{SESSION_IDLE_LIMIT, new_token, session_expired, token_hash};
    use crate::service::viewer::tests::viewer;

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
