//! `flotilla user create`: a global admin creates a user, or an API-only user for scripts and
//! dashboards, whose never-expiring token is printed once.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::config::ConfigArgs;
use super::output;

#[derive(Args, Debug)]
pub struct UserArgs {
    #[command(subcommand)]
    pub what: UserCommand,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user (global admins only). With --api-only, print the new user's API token.
    Create(CreateArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The user's email (the login name).
    #[arg(long)]
    pub email: String,

    /// The user's full name.
    #[arg(long)]
    pub name: String,

    /// The password (12-48 characters with a number and a symbol). Optional with --api-only
    /// (the server then sets a random one nobody knows); otherwise prompted for when absent.
    #[arg(long, conflicts_with = "password_stdin")]
    pub password: Option<String>,

    /// Read the password from the first line of standard input instead.
    #[arg(long)]
    pub password_stdin: bool,

    /// A global role: admin, maintainer, observer or observer_plus. Without it or --team, the
    /// user is a global observer.
    #[arg(long, conflicts_with = "teams")]
    pub global_role: Option<String>,

    /// A role on a team, as TEAM_ID:ROLE (e.g. 3:observer); repeat for several teams.
    #[arg(long = "team", value_name = "ID:ROLE", value_parser = parse_team_role)]
    pub teams: Vec<(u64, String)>,

    /// An API-only user, for scripts and dashboards: the server answers with a session token,
    /// printed here, that never expires; it is sent as `Authorization: Bearer <token>` and
    /// stops working when the user's sessions are revoked or the user is deleted.
    #[arg(long)]
    pub api_only: bool,
}

fn parse_team_role(text: &str) -> Result<(u64, String), String> {
    let (id, role) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not TEAM_ID:ROLE (e.g. 3:observer)"))?;
    let id = id
        .trim()
        .parse()
        .map_err(|_| format!("`{id}` is not a team id (a number)"))?;
    let role = role.trim();
    if role.is_empty() {
        return Err(format!("`{text}` has no role after the colon"));
    }
    Ok((id, role.to_owned()))
}

/// The body of `POST /users/admin`.
fn request_body(args: &CreateArgs, password: Option<String>) -> Value {
    let mut body = json!({
        "email": args.email,
        "name": args.name,
        "api_only": args.api_only,
    });
    if let Some(password) = password {
        body["password"] = json!(password);
    }
    if args.teams.is_empty() {
        let role = args.global_role.as_deref().unwrap_or("observer");
        body["global_role"] = json!(role);
    } else {
        let teams: Vec<Value> = args
            .teams
            .iter()
            .map(|(id, role)| json!({"id": id, "role": role}))
            .collect();
        body["teams"] = json!(teams);
    }
    body
}

pub async fn run(config: &ConfigArgs, args: UserArgs) -> anyhow::Result<()> {
    match args.what {
        UserCommand::Create(args) => create(config, args).await,
    }
}

async fn create(config: &ConfigArgs, args: CreateArgs) -> anyhow::Result<()> {
    let api = super::logged_in(config)?;
    let password = if args.password.is_some() {
        args.password.clone()
    } else if args.password_stdin || !args.api_only {
        let prompt = format!("Password for {}: ", args.email);
        Some(super::session::read_password(
            args.password_stdin,
            &prompt,
            true,
        )?)
    } else {
        None
    };
    let body = api
        .post("/users/admin", &request_body(&args, password))
        .await
        .context("creating the user")?;
    let user = &body["user"];
    let id = output::cell(&user["id"]);
    if args.api_only {
        let Some(token) = body["token"].as_str().filter(|t| !t.is_empty()) else {
            bail!("the server created API-only user {id} but answered no token");
        };
        // The token alone on standard output, so that `TOKEN=$(flotilla user create …)` works.
        println!("{token}");
        eprintln!(
            "Created API-only user {} <{}> (id {id}). The token above does not expire: send it \
             as `Authorization: Bearer <token>`; it stops working when the user's sessions are \
             revoked (DELETE /api/v1/fleet/users/{id}/sessions) or the user is deleted. It is \
             shown only now.",
            args.name, args.email
        );
    } else {
        let table = output::table(
            &["field", "value"],
            output::flatten(user)
                .into_iter()
                .map(|(key, value)| vec![key, value]),
        );
        println!("{table}");
        eprintln!("Created user {} <{}> (id {id}).", args.name, args.email);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(teams: Vec<(u64, String)>, global_role: Option<&str>, api_only: bool) -> CreateArgs {
        CreateArgs {
            email: "bot@example.com".into(),
            name: "Bot".into(),
            password: None,
            password_stdin: false,
            global_role: global_role.map(str::to_owned),
            teams,
            api_only,
        }
    }

    #[test]
    fn team_roles_parse() {
        assert_eq!(parse_team_role("3:observer"), Ok((3, "observer".into())));
        assert!(parse_team_role("3").is_err());
        assert!(parse_team_role("x:observer").is_err());
        assert!(parse_team_role("3:").is_err());
    }

    #[test]
    fn bodies_carry_roles_and_the_password_only_when_given() {
        let body = request_body(&args(vec![], None, true), None);
        assert_eq!(body["global_role"], "observer");
        assert_eq!(body["api_only"], true);
        assert!(body.get("password").is_none(), "{body}");
        let body = request_body(
            &args(vec![(2, "observer".into())], None, false),
            Some("pw-1!".into()),
        );
        assert_eq!(body["teams"], json!([{"id": 2, "role": "observer"}]));
        assert!(body.get("global_role").is_none());
        assert_eq!(body["password"], "pw-1!");
        let body = request_body(&args(vec![], Some("maintainer"), false), None);
        assert_eq!(body["global_role"], "maintainer");
    }
}
