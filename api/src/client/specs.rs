//! fleetctl's spec files: YAML documents separated by `---`, each
//! `{apiVersion: v1, kind: K, spec: {...}}`, grouped by kind the way `fleetctl apply` sends
//! them. Kinds: `query` (also `report`), `label`, `team` (also `fleet`, with the team under
//! `spec.team` or `spec.fleet`), `policy` (the team by name in `spec.team`, empty or absent for
//! a global policy), `config` and `enroll_secret`. Specs stay JSON values: the
//! server validates their fields, so a field this client does not know still reaches it.

use serde_json::Value;

/// Every spec of a file, by kind.
#[derive(Debug, Default, PartialEq)]
pub struct SpecGroup {
    /// `QuerySpec`s for `POST /spec/queries`.
    pub queries: Vec<Value>,
    /// `LabelSpec`s for `POST /spec/labels`.
    pub labels: Vec<Value>,
    /// `TeamSpec`s (the object under `spec.team`) for `POST /spec/teams`.
    pub teams: Vec<Value>,
    /// Policy specs for `POST /spec/policies`.
    pub policies: Vec<Value>,
    /// The settings for `PATCH /config`.
    pub config: Option<Value>,
    /// `{"secrets": [...]}` for `POST /spec/enroll_secret`.
    pub enroll_secret: Option<Value>,
}

impl SpecGroup {
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
            && self.labels.is_empty()
            && self.teams.is_empty()
            && self.policies.is_empty()
            && self.config.is_none()
            && self.enroll_secret.is_none()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("the file is not valid YAML: {0}")]
    Yaml(String),
    #[error("document {document}: {reason}")]
    Document { document: usize, reason: String },
}

fn bad(document: usize, reason: impl Into<String>) -> SpecError {
    SpecError::Document {
        document,
        reason: reason.into(),
    }
}

/// The `name` of a spec, required and non-empty.
fn name_of(document: usize, kind: &str, spec: &Value) -> Result<(), SpecError> {
    match spec.get("name").and_then(Value::as_str) {
        Some(name) if !name.trim().is_empty() => Ok(()),
        _ => Err(bad(document, format!("a {kind} spec needs a `name`"))),
    }
}

/// Parses a spec file. Documents are numbered from 1 in errors.
pub fn parse(text: &str) -> Result<SpecGroup, SpecError> {
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| SpecError::Yaml(e.to_string()))?;
    let mut group = SpecGroup::default();
    for (index, document) in documents.into_iter().enumerate() {
        let number = index + 1;
        let document = match document {
            Value::Null => continue,
            Value::Object(map) => map,
            _ => return Err(bad(number, "expected a mapping with `kind` and `spec`")),
        };
        let kind = document
            .get("kind")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .ok_or_else(|| bad(number, "missing `kind`"))?;
        let spec = match document.get("spec") {
            Some(Value::Object(_)) => document["spec"].clone(),
            Some(_) => {
                return Err(bad(
                    number,
                    format!("`spec` of the {kind} is not a mapping"),
                ));
            }
            None => return Err(bad(number, format!("missing `spec` on the {kind}"))),
        };
        match kind.as_str() {
            "query" | "report" => {
                name_of(number, "query", &spec)?;
                group.queries.push(spec);
            }
            "label" => {
                name_of(number, "label", &spec)?;
                group.labels.push(spec);
            }
            "team" | "fleet" => {
                let team = spec
                    .get("fleet")
                    .or_else(|| spec.get("team"))
                    .filter(|t| t.is_object())
                    .cloned()
                    .ok_or_else(|| bad(number, "a team spec needs a `team` mapping"))?;
                name_of(number, "team", &team)?;
                group.teams.push(team);
            }
            "policy" => {
                name_of(number, "policy", &spec)?;
                let query = spec.get("query").and_then(Value::as_str).unwrap_or("");
                if query.trim().is_empty() {
                    return Err(bad(number, "a policy spec needs a `query`"));
                }
                group.policies.push(spec);
            }
            "config" => {
                if group.config.is_some() {
                    return Err(bad(number, "config defined twice in the same file"));
                }
                group.config = Some(spec);
            }
            "enroll_secret" => {
                if group.enroll_secret.is_some() {
                    return Err(bad(number, "enroll_secret defined twice in the same file"));
                }
                if !spec.get("secrets").is_some_and(Value::is_array) {
                    return Err(bad(number, "an enroll_secret spec needs a `secrets` list"));
                }
                group.enroll_secret = Some(spec);
            }
            other => {
                return Err(bad(
                    number,
                    format!(
                        "unknown kind `{other}` (use query, label, team, policy, config or enroll_secret)"
                    ),
                ));
            }
        }
    }
    Ok(group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FILE: &str = r#"
apiVersion: v1
kind: query
spec:
  name: osquery_info
  query: SELECT * FROM osquery_info;
  description: the agent's own info
  interval: 3600
  platform: darwin,linux
  observer_can_run: true
---
apiVersion: v1
kind: label
spec:
  name: web servers
  query: SELECT 1 FROM processes WHERE name = 'nginx';
  label_membership_type: dynamic
---
apiVersion: v1
kind: team
spec:
  team:
    name: Workstations
    secrets:
      - secret: ws-secret
---
apiVersion: v1
kind: policy
spec:
  name: Firewall on
  query: SELECT 1 FROM alf WHERE global_state >= 1;
  platform: darwin
  critical: true
  resolution: Turn the firewall on.
  team: Workstations
---
apiVersion: v1
kind: config
spec:
  agent_options:
    config:
      options:
        distributed_interval: 10
---
apiVersion: v1
kind: enroll_secret
spec:
  secrets:
    - secret: global-secret
"#;

    #[test]
    fn a_multi_document_file_groups_by_kind() {
        let group = parse(FILE).unwrap();
        assert_eq!(group.queries.len(), 1);
        assert_eq!(group.queries[0]["name"], "osquery_info");
        assert_eq!(group.queries[0]["interval"], 3600, "numbers stay numbers");
        assert_eq!(group.queries[0]["observer_can_run"], true);
        assert_eq!(group.labels[0]["label_membership_type"], "dynamic");
        assert_eq!(
            group.teams,
            vec![json!({"name": "Workstations", "secrets": [{"secret": "ws-secret"}]})]
        );
        assert_eq!(
            group.config.as_ref().unwrap()["agent_options"]["config"]["options"]["distributed_interval"],
            10
        );
        assert_eq!(
            group.enroll_secret,
            Some(json!({"secrets": [{"secret": "global-secret"}]}))
        );
        assert_eq!(group.policies.len(), 1);
        assert_eq!(group.policies[0]["team"], "Workstations");
        assert_eq!(group.policies[0]["critical"], true);
    }

    #[test]
    fn newer_kind_names_are_accepted() {
        let group = parse(
            "kind: report\nspec:\n  name: q\n  query: SELECT 1\n---\nkind: fleet\nspec:\n  fleet:\n    name: t\n",
        )
        .unwrap();
        assert_eq!(group.queries.len(), 1);
        assert_eq!(group.teams[0]["name"], "t");
    }

    #[test]
    fn empty_documents_are_skipped() {
        let group =
            parse("---\n---\nkind: label\nspec:\n  name: l\n  query: SELECT 1\n---\n").unwrap();
        assert_eq!(group.labels.len(), 1);
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn mistakes_are_named_with_their_document() {
        let error = parse(
            "kind: query\nspec:\n  name: a\n  query: SELECT 1\n---\nkind: pack\nspec:\n  name: p\n",
        )
        .unwrap_err();
        assert!(
            matches!(&error, SpecError::Document { document: 2, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("unknown kind `pack`"));
        let error = parse("kind: query\nspec:\n  query: SELECT 1\n").unwrap_err();
        assert!(error.to_string().contains("needs a `name`"), "{error}");
        let error = parse("kind: label\n").unwrap_err();
        assert!(error.to_string().contains("missing `spec`"), "{error}");
        let error = parse("spec:\n  name: x\n").unwrap_err();
        assert!(error.to_string().contains("missing `kind`"), "{error}");
        let error = parse("kind: team\nspec:\n  name: flat\n").unwrap_err();
        assert!(error.to_string().contains("`team` mapping"), "{error}");
        let error = parse("kind: config\nspec: {}\n---\nkind: config\nspec: {}\n").unwrap_err();
        assert!(error.to_string().contains("twice"), "{error}");
        let error = parse("kind: policy\nspec:\n  name: p\n").unwrap_err();
        assert!(error.to_string().contains("needs a `query`"), "{error}");
        let error = parse("kind: enroll_secret\nspec:\n  secrets: nope\n").unwrap_err();
        assert!(error.to_string().contains("`secrets` list"), "{error}");
        assert!(matches!(
            parse("kind: [unclosed\n"),
            Err(SpecError::Yaml(_))
        ));
    }
}
