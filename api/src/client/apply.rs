//! `flotilla apply -f FILE` and `flotilla delete -f FILE`: fleetctl's spec files sent to the
//! server's spec endpoints, in fleetctl's order — queries, labels, config, enroll secrets,
//! teams, policies — so a later kind can refer to an earlier one (a policy to its team).
//!
//! - queries → `POST /spec/queries {"specs": [...]}` (upsert by name)
//! - labels → `POST /spec/labels {"specs": [...]}`
//! - config → `PATCH /config` (`?dry_run=true` with `--dry-run`)
//! - enroll_secret → `POST /spec/enroll_secret {"spec": {"secrets": [...]}}`
//! - teams → `POST /spec/teams {"specs": [...]}` (`?dry_run=true` with `--dry-run`)
//! - policies → `POST /spec/policies {"specs": [...]}` (`?dry_run=true` with `--dry-run`)
//!
//! `--dry-run` is supported by the server for config, teams and policies; the other kinds are
//! checked here (parsed and validated) and left out.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};

use super::config::ConfigArgs;
use super::http::{Api, path_segment};
use super::specs::{self, SpecGroup};

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// The YAML spec file (`-` for standard input).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,

    /// Check the specs without changing anything (the server checks config and team specs;
    /// the other kinds are only parsed).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// The YAML spec file naming what to delete (`-` for standard input).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
}

fn read_specs(file: &Path) -> anyhow::Result<SpecGroup> {
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading specs from standard input")?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let group = specs::parse(&text).with_context(|| format!("in {}", file.display()))?;
    if group.is_empty() {
        anyhow::bail!("{} holds no spec", file.display());
    }
    Ok(group)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub async fn apply(config: &ConfigArgs, args: ApplyArgs) -> anyhow::Result<()> {
    let group = read_specs(&args.file)?;
    let api = super::logged_in(config)?;
    apply_group(&api, &group, args.dry_run).await
}

/// Sends every spec of `group`; prints one line per kind on standard output.
pub async fn apply_group(api: &Api, group: &SpecGroup, dry_run: bool) -> anyhow::Result<()> {
    let dry = if dry_run { "?dry_run=true" } else { "" };
    let skipped = |what: &str| {
        println!("[!] ignoring {what}, dry run mode only supported for 'config' and 'team' specs")
    };
    if !group.queries.is_empty() {
        if dry_run {
            skipped("queries");
        } else {
            api.post("/spec/queries", &json!({ "specs": group.queries }))
                .await
                .context("applying queries")?;
            println!(
                "[+] applied {}",
                plural(group.queries.len(), "query", "queries")
            );
        }
    }
    if !group.labels.is_empty() {
        if dry_run {
            skipped("labels");
        } else {
            api.post("/spec/labels", &json!({ "specs": group.labels }))
                .await
                .context("applying labels")?;
            println!(
                "[+] applied {}",
                plural(group.labels.len(), "label", "labels")
            );
        }
    }
    if let Some(settings) = &group.config {
        api.patch(&format!("/config{dry}"), settings)
            .await
            .context("applying config")?;
        if dry_run {
            println!("[+] would've applied config");
        } else {
            println!("[+] applied config");
        }
    }
    if let Some(secrets) = &group.enroll_secret {
        if dry_run {
            skipped("enroll secrets");
        } else {
            api.post("/spec/enroll_secret", &json!({ "spec": secrets }))
                .await
                .context("applying enroll secrets")?;
            println!("[+] applied enroll secrets");
        }
    }
    if !group.teams.is_empty() {
        api.post(
            &format!("/spec/teams{dry}"),
            &json!({ "specs": group.teams }),
        )
        .await
        .context("applying teams")?;
        let teams = plural(group.teams.len(), "team", "teams");
        if dry_run {
            println!("[+] would've applied {teams}");
        } else {
            println!("[+] applied {teams}");
        }
    }
    if !group.policies.is_empty() {
        api.post(
            &format!("/spec/policies{dry}"),
            &json!({ "specs": group.policies }),
        )
        .await
        .context("applying policies")?;
        let policies = plural(group.policies.len(), "policy", "policies");
        if dry_run {
            println!("[+] would've applied {policies}");
        } else {
            println!("[+] applied {policies}");
        }
    }
    Ok(())
}

pub async fn delete(config: &ConfigArgs, args: DeleteArgs) -> anyhow::Result<()> {
    let group = read_specs(&args.file)?;
    let api = super::logged_in(config)?;
    delete_group(&api, &group).await
}

/// Deletes what `group` names: queries and labels by name, policies by team and name, teams by
/// name through their id.
pub async fn delete_group(api: &Api, group: &SpecGroup) -> anyhow::Result<()> {
    let name = |spec: &Value| spec["name"].as_str().unwrap_or_default().to_owned();
    for query in &group.queries {
        let query = name(query);
        let outcome = api
            .delete(&format!("/queries/{}", path_segment(&query)))
            .await;
        report("query", &query, outcome)?;
    }
    for label in &group.labels {
        let label = name(label);
        let outcome = api
            .delete(&format!("/labels/{}", path_segment(&label)))
            .await;
        report("label", &label, outcome)?;
    }
    // Before the teams: a deleted team takes its policies along.
    if !group.policies.is_empty() {
        delete_policies(api, &group.policies).await?;
    }
    if !group.teams.is_empty() {
        let teams = api.get("/teams").await.context("listing teams")?;
        for team in &group.teams {
            let team = name(team);
            let id = teams["teams"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["name"] == team.as_str())
                .and_then(|t| t["id"].as_u64());
            match id {
                Some(id) => report("team", &team, api.delete(&format!("/teams/{id}")).await)?,
                None => println!("[!] team {team:?} doesn't exist"),
            }
        }
    }
    if group.config.is_some() {
        println!("[!] config cannot be deleted; skipped");
    }
    if group.enroll_secret.is_some() {
        println!("[!] enroll secrets cannot be deleted with delete; apply an empty list instead");
    }
    Ok(())
}

/// Deletes policies by team name (empty: global) and policy name.
async fn delete_policies(api: &Api, specs: &[Value]) -> anyhow::Result<()> {
    let teams = api.get("/teams").await.context("listing teams")?;
    for spec in specs {
        let name = spec["name"].as_str().unwrap_or_default();
        let team = spec["team"].as_str().unwrap_or_default();
        let scope = if team.is_empty() {
            "/global/policies".to_owned()
        } else {
            let id = teams["teams"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["name"] == team)
                .and_then(|t| t["id"].as_u64());
            match id {
                Some(id) => format!("/teams/{id}/policies"),
                None => {
                    println!("[!] team {team:?} of policy {name:?} doesn't exist");
                    continue;
                }
            }
        };
        let listed = api.get(&scope).await.context("listing policies")?;
        let id = listed["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == name)
            .and_then(|p| p["id"].as_u64());
        match id {
            Some(id) => {
                api.post(&format!("{scope}/delete"), &json!({ "ids": [id] }))
                    .await
                    .with_context(|| format!("deleting policy {name:?}"))?;
                println!("[+] deleted policy {name:?}");
            }
            None => println!("[!] policy {name:?} doesn't exist"),
        }
    }
    Ok(())
}

fn report(
    kind: &str,
    name: &str,
    outcome: Result<Value, super::http::ApiError>,
) -> anyhow::Result<()> {
    match outcome {
        Ok(_) => {
            println!("[+] deleted {kind} {name:?}");
            Ok(())
        }
        Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => {
            println!("[!] {kind} {name:?} doesn't exist");
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("deleting {kind} {name:?}")),
    }
}
