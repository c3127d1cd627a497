//! `Viewer`: who is asking, and what their roles allow. Fleet's permissions: observers read,
//! maintainers write hosts, labels and queries, only admins manage users and teams, team roles
//! reach only their team's objects. Every service checks these itself, so a caller that is not
//! the REST API gets the same answers.

use flotilla_engine::TeamId;
use flotilla_storage::admin::{HostScope, User};

use crate::fleet::error::FleetError;

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
    /// The hash of the session token the request came with.
    pub session: Option<String>,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use flotilla_storage::admin::{UserId, UserTeam};

    /// A viewer with these roles, for tests.
    pub(crate) fn viewer(global: Option<&str>, teams: &[(u64, &str)]) -> Viewer {
        Viewer {
            session: None,
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
}
