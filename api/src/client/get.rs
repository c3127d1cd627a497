//! `flotilla get …`: what the server holds, as a table (default), JSON or YAML.

use clap::{Args, Subcommand};
use serde_json::Value;

use super::config::ConfigArgs;
use super::http::path_segment;
use super::output;

#[derive(Args, Debug)]
pub struct GetArgs {
    #[command(subcommand)]
    pub what: GetWhat,

    /// Print the server's JSON instead of a table.
    #[arg(long, global = true, conflicts_with = "yaml")]
    pub json: bool,

    /// Print YAML instead of a table.
    #[arg(long, global = true)]
    pub yaml: bool,
}

#[derive(Subcommand, Debug)]
pub enum GetWhat {
    /// Every host, with its status (online/offline), platform and team.
    Hosts,
    /// One host by hostname, UUID or serial number, with all its fields.
    Host {
        /// Hostname, UUID or hardware serial.
        name: String,
    },
    /// Labels, with their type and how many hosts they hold.
    #[command(alias = "label")]
    Labels,
    /// Saved queries.
    #[command(alias = "query")]
    Queries,
    /// Teams.
    #[command(alias = "team")]
    Teams,
    /// Policies, global and of every team, with how many hosts pass and fail them.
    #[command(alias = "policy")]
    Policies,
    /// Users and their roles.
    #[command(alias = "user")]
    Users,
    /// The activity log, newest first.
    #[command(alias = "activity")]
    Activities,
    /// The server's settings (`GET /config`), as dotted keys.
    Config,
}

enum Shape {
    /// A list of objects shown as a table with these columns (header, JSON key).
    List(Vec<Value>, &'static [(&'static str, &'static str)]),
    /// One object shown as `field | value`.
    Object(Value),
}

pub async fn run(config: &ConfigArgs, args: GetArgs) -> anyhow::Result<()> {
    let api = super::logged_in(config)?;
    let shape = match &args.what {
        GetWhat::Hosts => Shape::List(
            api.get_all("/hosts?order_key=hostname", "hosts").await?,
            &[
                ("hostname", "hostname"),
                ("status", "status"),
                ("platform", "platform"),
                ("os version", "os_version"),
                ("osquery", "osquery_version"),
                ("team", "team_name"),
                ("seen", "seen_time"),
                ("id", "id"),
            ],
        ),
        GetWhat::Host { name } => {
            let body = api
                .get(&format!("/hosts/identifier/{}", path_segment(name)))
                .await?;
            Shape::Object(body["host"].clone())
        }
        GetWhat::Labels => Shape::List(
            list(api.get("/labels").await?, "labels"),
            &[
                ("name", "name"),
                ("type", "label_type"),
                ("membership", "label_membership_type"),
                ("hosts", "host_count"),
                ("platform", "platform"),
                ("query", "query"),
                ("id", "id"),
            ],
        ),
        GetWhat::Queries => Shape::List(
            list(api.get("/queries").await?, "queries"),
            &[
                ("name", "name"),
                ("query", "query"),
                ("description", "description"),
                ("team id", "team_id"),
                ("interval", "interval"),
                ("id", "id"),
            ],
        ),
        GetWhat::Teams => Shape::List(
            list(api.get("/teams").await?, "teams"),
            &[
                ("name", "name"),
                ("hosts", "host_count"),
                ("users", "user_count"),
                ("description", "description"),
                ("id", "id"),
            ],
        ),
        GetWhat::Policies => Shape::List(
            policies(&api).await?,
            &[
                ("name", "name"),
                ("team", "team"),
                ("passing", "passing_host_count"),
                ("failing", "failing_host_count"),
                ("critical", "critical"),
                ("platform", "platform"),
                ("query", "query"),
                ("id", "id"),
            ],
        ),
        GetWhat::Users => Shape::List(
            api.get_all("/users", "users").await?,
            &[
                ("name", "name"),
                ("email", "email"),
                ("global role", "global_role"),
                ("api only", "api_only"),
                ("id", "id"),
            ],
        ),
        GetWhat::Activities => Shape::List(
            api.get_all(
                "/activities?order_key=created_at&order_direction=desc",
                "activities",
            )
            .await?,
            &[
                ("created", "created_at"),
                ("actor", "actor_full_name"),
                ("type", "type"),
                ("details", "details"),
            ],
        ),
        GetWhat::Config => Shape::Object(api.get("/config").await?),
    };
    print!("{}", render(shape, args.json, args.yaml)?);
    Ok(())
}

/// The global policies, then each team's, each with its team's name under `team` (empty for
/// global ones).
async fn policies(api: &super::http::Api) -> anyhow::Result<Vec<Value>> {
    let with_team = |mut policy: Value, team: &str| {
        policy["team"] = Value::from(team);
        policy
    };
    let mut all: Vec<Value> = list(api.get("/global/policies").await?, "policies")
        .into_iter()
        .map(|p| with_team(p, ""))
        .collect();
    for team in list(api.get("/teams").await?, "teams") {
        let (Some(id), Some(name)) = (team["id"].as_u64(), team["name"].as_str()) else {
            continue;
        };
        let policies = list(api.get(&format!("/teams/{id}/policies")).await?, "policies");
        all.extend(policies.into_iter().map(|p| with_team(p, name)));
    }
    Ok(all)
}

fn list(body: Value, key: &str) -> Vec<Value> {
    match body.get(key) {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    }
}

fn render(shape: Shape, json: bool, yaml: bool) -> anyhow::Result<String> {
    let value = match &shape {
        Shape::List(items, _) => Value::Array(items.clone()),
        Shape::Object(object) => object.clone(),
    };
    if json {
        return Ok(output::json_pretty(&value) + "\n");
    }
    if yaml {
        return output::yaml(&value);
    }
    let table = match shape {
        Shape::List(items, columns) => {
            let header: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
            let keys: Vec<&str> = columns.iter().map(|(_, k)| *k).collect();
            output::table(&header, items.iter().map(|item| output::cells(item, &keys)))
        }
        Shape::Object(object) => output::table(
            &["field", "value"],
            output::flatten(&object)
                .into_iter()
                .map(|(key, value)| vec![key, value]),
        ),
    };
    Ok(table + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lists_render_as_tables_json_or_yaml() {
        let hosts = || {
            Shape::List(
                vec![json!({"hostname": "web-1", "status": "online", "id": 1})],
                &[("hostname", "hostname"), ("status", "status")],
            )
        };
        let table = render(hosts(), false, false).unwrap();
        assert!(table.contains("HOSTNAME"), "{table}");
        assert!(table.contains("web-1"));
        assert!(!table.contains("\"id\""));
        let json: Value = serde_json::from_str(&render(hosts(), true, false).unwrap()).unwrap();
        assert_eq!(json[0]["id"], 1, "JSON keeps every field");
        let yaml = render(hosts(), false, true).unwrap();
        assert!(yaml.contains("hostname: web-1"), "{yaml}");
    }
}
