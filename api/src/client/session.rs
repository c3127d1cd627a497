//! `flotilla login`, `logout` and `setup`: sessions kept in the config file's contexts.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;

use super::config::{ConfigArgs, ConfigFile, Context, context_flag};
use super::http::{Api, Trust, normalise_address};

/// Where the server is and how to trust its certificate.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// The server, e.g. https://localhost:8080. Defaults to the context's address.
    #[arg(long, env = "FLOTILLA_ADDRESS")]
    pub address: Option<String>,

    /// PEM file of the CA that signed the server's certificate (for `flotilla serve`'s
    /// generated one: flotilla-data/tls/ca.pem). Default: the system's roots.
    #[arg(long, env = "FLOTILLA_CA", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,

    /// Accept any server certificate. For development only: anyone in the middle sees the
    /// password and the token.
    #[arg(long)]
    pub insecure: bool,
}

impl ServerArgs {
    /// The context to log in to: the flags over what the context already had.
    fn apply_to(&self, mut context: Context) -> anyhow::Result<Context> {
        if let Some(address) = &self.address {
            context.address = normalise_address(address)?;
        }
        if context.address.is_empty() {
            bail!("--address is required: where is the server (e.g. https://localhost:8080)?");
        }
        if let Some(ca) = &self.ca {
            let absolute = std::path::absolute(ca)
                .with_context(|| format!("resolving the path {}", ca.display()))?;
            if !absolute.is_file() {
                bail!("the CA file {} does not exist", absolute.display());
            }
            context.rootca = absolute.display().to_string();
            context.tls_skip_verify = false;
        }
        if self.insecure {
            context.tls_skip_verify = true;
            context.rootca.clear();
        }
        Ok(context)
    }
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// The account's email. Defaults to the context's.
    #[arg(long, env = "FLOTILLA_EMAIL")]
    pub email: Option<String>,

    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {}

#[derive(Args, Debug)]
pub struct SetupArgs {
    #[command(flatten)]
    pub server: ServerArgs,

    /// Email of the first admin.
    #[arg(long)]
    pub email: String,

    /// Full name of the first admin.
    #[arg(long)]
    pub name: String,

    /// Organisation name.
    #[arg(long, default_value = "Flotilla")]
    pub org_name: String,

    /// Read the password from the first line of standard input instead of prompting (12-48
    /// characters with a number and a symbol).
    #[arg(long)]
    pub password_stdin: bool,
}

/// The password: a line of standard input, or typed at a prompt without echo.
pub(crate) fn read_password(
    from_stdin: bool,
    prompt: &str,
    confirm: bool,
) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        let password = rpassword::prompt_password(prompt).context(
            "cannot prompt for the password (no terminal?); pipe it in with --password-stdin",
        )?;
        if confirm {
            let again = rpassword::prompt_password("Password again: ")
                .context("reading the password again")?;
            if again != password {
                bail!("the two passwords differ");
            }
        }
        password
    };
    if password.is_empty() {
        bail!("the password is empty");
    }
    Ok(password)
}

fn read_email(given: Option<&str>, context: &Context) -> anyhow::Result<String> {
    if let Some(email) = given {
        return Ok(email.trim().to_owned());
    }
    if !context.email.is_empty() {
        return Ok(context.email.clone());
    }
    bail!("--email is required")
}

pub async fn login(config_args: &ConfigArgs, args: LoginArgs) -> anyhow::Result<()> {
    let path = config_args.path()?;
    let mut config = ConfigFile::load(&path)?;
    let existing = config
        .contexts
        .get(&config_args.context)
        .cloned()
        .unwrap_or_default();
    let mut context = args.server.apply_to(existing)?;
    let email = read_email(args.email.as_deref(), &context)?;
    let password = read_password(args.password_stdin, "Password: ", false)?;
    let api = Api::new(&context.address, Trust::of(&context), None)?;
    let body = api
        .post("/login", &json!({"email": email, "password": password}))
        .await?;
    let Some(token) = body["token"].as_str().filter(|t| !t.is_empty()) else {
        bail!("the server's login answer has no token");
    };
    context.email = email;
    context.token = token.to_owned();
    config
        .contexts
        .insert(config_args.context.clone(), context.clone());
    config.save(&path)?;
    let name = body["user"]["name"].as_str().unwrap_or(&context.email);
    eprintln!(
        "Logged in to {} as {name}; the session is kept in {} (context `{}`).",
        context.address,
        path.display(),
        config_args.context
    );
    Ok(())
}

pub async fn logout(config_args: &ConfigArgs, _args: LogoutArgs) -> anyhow::Result<()> {
    let path = config_args.path()?;
    let mut config = ConfigFile::load(&path)?;
    let context = config.context(&config_args.context)?.clone();
    if context.token.is_empty() {
        eprintln!(
            "Not logged in to {} (context `{}`).",
            context.address, config_args.context
        );
        return Ok(());
    }
    let api = Api::for_context(&context)?;
    let outcome = api.post("/logout", &json!({})).await;
    match outcome {
        Ok(_) => {}
        // The session had already ended on the server: forgetting it here is all there is to do.
        Err(e) if e.status() == Some(reqwest::StatusCode::UNAUTHORIZED) => {}
        Err(e) => return Err(e).context("logging out (the token is kept; try again)"),
    }
    if let Some(stored) = config.contexts.get_mut(&config_args.context) {
        stored.token.clear();
    }
    config.save(&path)?;
    eprintln!(
        "Logged out of {} (context `{}`).",
        context.address, config_args.context
    );
    Ok(())
}

pub async fn setup(config_args: &ConfigArgs, args: SetupArgs) -> anyhow::Result<()> {
    let path = config_args.path()?;
    let mut config = ConfigFile::load(&path)?;
    let existing = config
        .contexts
        .get(&config_args.context)
        .cloned()
        .unwrap_or_default();
    let mut context = args.server.apply_to(existing)?;
    let password = read_password(args.password_stdin, "Password for the first admin: ", true)?;
    let api = Api::new(&context.address, Trust::of(&context), None)?;
    let body = api
        .post(
            "/api/v1/setup",
            &json!({
                "admin": {"email": args.email, "name": args.name, "password": password},
                "org_info": {"org_name": args.org_name},
                "server_url": context.address,
            }),
        )
        .await?;
    context.email = args.email.clone();
    context.token = body["token"].as_str().unwrap_or_default().to_owned();
    config
        .contexts
        .insert(config_args.context.clone(), context.clone());
    config.save(&path)?;
    if context.token.is_empty() {
        eprintln!(
            "Created the first admin {}; now run `flotilla login{}`.",
            args.email,
            context_flag(&config_args.context)
        );
    } else {
        eprintln!(
            "Created the first admin {} on {} and logged in (context `{}`).",
            args.email, context.address, config_args.context
        );
    }
    Ok(())
}
