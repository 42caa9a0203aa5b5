//! What each client subcommand does: sign in and out, resolve names to ids (a workspace is
//! found by name in `--org` or the caller's only organization), call the API, print.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::creds::{self, ServerCredential};
use super::http::{Api, normalize_base};
use super::output::{Column, Field, Format, render, text};
use super::{
    ClientCommand, KubeconfigArgs, LoginArgs, OrgArg, OrgCommand, ProjectCommand, ServerArg,
    Session, WsCommand, absolute, hostname, load_creds, session,
};

/// The grant type of a device-code poll (RFC 8628 §3.4).
const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn print(format: Format, value: &Value, columns: &[Column]) -> anyhow::Result<()> {
    let out = render(format, value, columns)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .context("writing the output")?;
    Ok(())
}

/// Runs one client subcommand.
pub async fn run(cmd: ClientCommand) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now();
    match cmd {
        ClientCommand::Login(args) => login(args).await,
        ClientCommand::Logout { server } => logout(&server).await,
        ClientCommand::Org(OrgCommand::List { common }) => {
            let s = session(&common.server, now)?;
            let orgs = s.api.list_all("/orgs").await?;
            print(common.output, &Value::Array(orgs), ORG_COLUMNS)
        }
        ClientCommand::Ws(cmd) => workspaces(cmd, now).await,
        ClientCommand::Project(cmd) => projects(cmd, now).await,
        ClientCommand::Kubeconfig(args) => kubeconfig(args, now).await,
    }
}

const ORG_COLUMNS: &[Column] = &[
    ("ID", |v| text(v.f("id"))),
    ("NAME", |v| text(v.f("name"))),
    ("DISPLAY NAME", |v| text(v.f("display_name"))),
    ("ROLE", |v| text(v.f("my_role"))),
    ("WORKSPACES", |v| text(v.f("usage").f("workspaces"))),
];

const WS_COLUMNS: &[Column] = &[
    ("ID", |v| text(v.f("id"))),
    ("NAME", |v| text(v.f("name"))),
    ("PLAN", |v| text(v.f("plan_id"))),
    ("STATE", |v| text(v.f("state"))),
    ("PROJECTS", |v| text(v.f("projects"))),
    ("MESSAGE", |v| text(v.f("message"))),
];

const PROJECT_COLUMNS: &[Column] = &[
    ("ID", |v| text(v.f("id"))),
    ("NAME", |v| text(v.f("name"))),
    ("CREATED", |v| text(v.f("created_at"))),
];

// ---------------------------------------------------------------------------------------------
// Signing in and out
// ---------------------------------------------------------------------------------------------

fn read_line(prompt: Option<&str>) -> anyhow::Result<String> {
    if let Some(p) = prompt {
        eprint!("{p}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn password_token(api: &Api, args: &LoginArgs, name: &str) -> anyhow::Result<Value> {
    let on_terminal = std::io::stdin().is_terminal();
    let email = match &args.email {
        Some(e) => e.clone(),
        None if on_terminal && !args.password_stdin => read_line(Some("E-mail: "))?,
        None => bail!("give your e-mail address with --email (no terminal to ask on)"),
    };
    let password = if args.password_stdin {
        read_line(None)?
    } else if on_terminal {
        rpassword::prompt_password("Password: ").context("reading the password")?
    } else {
        bail!(
            "no terminal to ask the password on; pass --password-stdin and give it on standard input, or use --device"
        );
    };
    if email.trim().is_empty() || password.is_empty() {
        bail!("an e-mail address and a password are needed");
    }
    api.call(
        Method::POST,
        "/auth/token",
        Some(&json!({"email": email.trim(), "password": password, "name": name})),
    )
    .await
}

async fn device_token(api: &Api, name: &str) -> anyhow::Result<Value> {
    let (status, start) = api
        .post_form("/auth/device", &[("client_id", "kaas-cli"), ("name", name)])
        .await?;
    if !status.is_success() {
        bail!("{}", Api::message(status, &start));
    }
    let device_code = start
        .f("device_code")
        .as_str()
        .ok_or_else(|| anyhow!("the server's device authorization has no device_code"))?;
    let user_code = text(start.f("user_code"));
    let complete = text(start.f("verification_uri_complete"));
    let mut interval = start.f("interval").as_u64().unwrap_or(5).max(1);
    let expires_in = start.f("expires_in").as_u64().unwrap_or(600);
    eprintln!(
        "To sign in, open {complete}\nin a browser where you are signed in to kaas, check that it shows the code {user_code}, and approve it.\nWaiting for approval…"
    );
    let deadline = Instant::now() + Duration::from_secs(expires_in);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let (status, answer) = api
            .post_form(
                "/auth/device/token",
                &[
                    ("grant_type", DEVICE_GRANT_TYPE),
                    ("device_code", device_code),
                    ("client_id", "kaas-cli"),
                ],
            )
            .await?;
        if status.is_success() {
            return Ok(answer);
        }
        match answer.f("error").as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            _ => bail!("{}", Api::message(status, &answer)),
        }
        if Instant::now() >= deadline {
            bail!(
                "the code {user_code} expired before it was approved; run kaas login --device again"
            );
        }
    }
}

async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let base = normalize_base(&args.url)?;
    let (path, mut creds) = load_creds()?;
    let previous = creds.servers.get(&base).cloned();
    // A CA given now wins; otherwise the one remembered for this server.
    let ca_file = match &args.ca_file {
        Some(p) => Some(absolute(p)?),
        None => previous.as_ref().and_then(|p| p.ca_file.clone()),
    };
    let api = Api::new(&base, ca_file.as_deref(), None)?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("kaas login on {}", hostname()));
    let got = if args.device {
        device_token(&api, &name).await?
    } else {
        password_token(&api, &args, &name).await?
    };
    let field = |k: &str| {
        got.f(k)
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("the server's answer has no {k}"))
    };
    let cred = ServerCredential {
        token: field("access_token")?,
        expires_at: field("expires_at")?
            .parse()
            .context("the server's expires_at is not a time")?,
        user: field("user")?,
        token_id: got.f("token_id").as_str().map(str::to_string),
        ca_file,
    };
    // The credential this one replaces is revoked, so logins do not pile up tokens. Best
    // effort: it may have expired or been revoked already.
    if let Some(old) = previous.as_ref().filter(|o| o.token_id.is_some())
        && let Ok(old_api) = Api::new(&base, cred.ca_file.as_deref(), Some(old.token.clone()))
    {
        let _ = revoke(&old_api, old).await;
    }
    let (user, expires_at) = (cred.user.clone(), cred.expires_at);
    creds.servers.insert(base.clone(), cred);
    creds.current = Some(base.clone());
    creds::save(&path, &creds)?;
    let summary =
        json!({"server": base, "user": user, "expires_at": expires_at, "credentials": path});
    match args.output {
        Format::Table => println!(
            "logged in to {base} as {user}; the credential expires at {expires_at} (kept in {})",
            path.display()
        ),
        other => print(other, &summary, &[])?,
    }
    Ok(())
}

/// Revokes a stored credential on its server.
async fn revoke(api: &Api, cred: &ServerCredential) -> anyhow::Result<()> {
    let id = cred
        .token_id
        .as_deref()
        .ok_or_else(|| anyhow!("the stored credential has no token id"))?;
    let (status, body) = api
        .call_raw(Method::DELETE, &format!("/me/tokens/{id}"), None)
        .await?;
    // Already expired or revoked (401), or gone (404): nothing left to revoke.
    if status.is_success() || status == StatusCode::UNAUTHORIZED || status == StatusCode::NOT_FOUND
    {
        Ok(())
    } else {
        Err(anyhow!(Api::message(status, &body)))
    }
}

async fn logout(server: &ServerArg) -> anyhow::Result<()> {
    let (path, mut creds) = load_creds()?;
    let base = match &server.server {
        Some(s) => normalize_base(s)?,
        None => creds
            .current
            .clone()
            .ok_or_else(|| anyhow!("not logged in; there is nothing to log out of"))?,
    };
    let cred = creds
        .servers
        .get(&base)
        .cloned()
        .ok_or_else(|| anyhow!("not logged in to {base}"))?;
    let api = Api::new(&base, cred.ca_file.as_deref(), Some(cred.token.clone()))?;
    revoke(&api, &cred)
        .await
        .with_context(|| format!("could not revoke the credential on {base} (kept; try again)"))?;
    creds.servers.remove(&base);
    if creds.current.as_deref() == Some(base.as_str()) {
        creds.current = None;
    }
    creds::save(&path, &creds)?;
    println!("logged out of {base}; the credential was revoked");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Names to ids
// ---------------------------------------------------------------------------------------------

/// The organization `--org` names (name or id), else the caller's only one: its id and a
/// name to show.
async fn org_of(api: &Api, org: &OrgArg) -> anyhow::Result<(String, String)> {
    if let Some(o) = org.org.as_deref().filter(|o| o.starts_with("org_")) {
        return Ok((o.to_string(), o.to_string()));
    }
    let orgs = api.list_all("/orgs").await?;
    let found = match &org.org {
        Some(name) => orgs
            .iter()
            .find(|o| o.f("name").as_str() == Some(name.as_str()))
            .ok_or_else(|| anyhow!("you belong to no organization named {name:?}"))?,
        None => match orgs.as_slice() {
            [one] => one,
            [] => bail!("you belong to no organization"),
            many => {
                let names: Vec<String> = many.iter().map(|o| text(o.f("name"))).collect();
                bail!(
                    "you belong to {} organizations ({}); choose one with --org",
                    many.len(),
                    names.join(", ")
                )
            }
        },
    };
    Ok((text(found.f("id")), text(found.f("name"))))
}

async fn org_id(api: &Api, org: &OrgArg) -> anyhow::Result<String> {
    Ok(org_of(api, org).await?.0)
}

/// The workspace a name (in `--org`, or the only organization) or id names, as the API
/// shows it.
async fn workspace(api: &Api, org: &OrgArg, ws: &str) -> anyhow::Result<Value> {
    if ws.starts_with("ws_") {
        return api.get(&format!("/workspaces/{ws}")).await;
    }
    let (org_id, org_name) = org_of(api, org).await?;
    let all = api.list_all(&format!("/orgs/{org_id}/workspaces")).await?;
    all.into_iter()
        .find(|w| w.f("name").as_str() == Some(ws))
        .ok_or_else(|| anyhow!("no workspace named {ws:?} in organization {org_name}"))
}

async fn workspace_id(api: &Api, org: &OrgArg, ws: &str) -> anyhow::Result<String> {
    if ws.starts_with("ws_") {
        return Ok(ws.to_string());
    }
    Ok(text(workspace(api, org, ws).await?.f("id")))
}

// ---------------------------------------------------------------------------------------------
// Workspaces and projects
// ---------------------------------------------------------------------------------------------

/// How long a workspace may stay in a retried Error before `--wait` gives up on it.
const RETRIED_ERROR_GRACE: Duration = Duration::from_secs(120);

/// What `--wait` makes of one look at the workspace.
#[derive(Debug, PartialEq, Eq)]
enum Waited {
    Ready,
    Waiting,
    Failed(String),
}

/// Ready is done; Deleting, and an Error kaas does not retry, fail at once. NB: the
/// reconciler retries every failed pass and says so in the message (`retrying: …`, `…
/// (retrying): …`, see `reconcile::runtime` and `observe`), and K3K's first attempts often
/// fail on a real host before the cluster comes up: such an Error fails only once it has
/// lasted `RETRIED_ERROR_GRACE`.
fn judge(state: &str, message: &str, in_error_for: Duration) -> Waited {
    let reason = || {
        if message.is_empty() {
            "no reason given".to_string()
        } else {
            message.to_string()
        }
    };
    match state {
        "Ready" => Waited::Ready,
        "Deleting" => Waited::Failed("it is being deleted".into()),
        "Error" if !message.contains("retrying") || in_error_for >= RETRIED_ERROR_GRACE => {
            Waited::Failed(reason())
        }
        _ => Waited::Waiting,
    }
}

/// Follows a workspace until Ready, printing each new state on stderr; fails with the
/// workspace's message when it fails (see [`judge`]) or the timeout passes.
async fn wait_ready(api: &Api, id: &str, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    let mut error_since: Option<Instant> = None;
    loop {
        let w = api.get(&format!("/workspaces/{id}")).await?;
        let name = text(w.f("name"));
        let state = text(w.f("state"));
        let message = w.f("message").as_str().unwrap_or("");
        let line = if message.is_empty() {
            state.clone()
        } else {
            format!("{state}: {message}")
        };
        if line != last {
            eprintln!("{name} {line}");
            last = line;
        }
        error_since = match (state.as_str(), error_since) {
            ("Error", None) => Some(Instant::now()),
            ("Error", since) => since,
            _ => None,
        };
        let in_error_for = error_since.map_or(Duration::ZERO, |t| t.elapsed());
        match judge(&state, message, in_error_for) {
            Waited::Ready => return Ok(w),
            Waited::Failed(why) => bail!("workspace {name} failed: {why}"),
            Waited::Waiting => {}
        }
        if Instant::now() >= deadline {
            bail!(
                "workspace {name} is still {state} after {} seconds{}",
                timeout.as_secs(),
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            );
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

async fn workspaces(cmd: WsCommand, now: jiff::Timestamp) -> anyhow::Result<()> {
    match cmd {
        WsCommand::List { org, common } => {
            let s = session(&common.server, now)?;
            let org_id = org_id(&s.api, &org).await?;
            let all = s
                .api
                .list_all(&format!("/orgs/{org_id}/workspaces"))
                .await?;
            print(common.output, &Value::Array(all), WS_COLUMNS)
        }
        WsCommand::Create {
            name,
            plan,
            org,
            wait,
            timeout,
            common,
        } => {
            let s = session(&common.server, now)?;
            let org_id = org_id(&s.api, &org).await?;
            let mut w = s
                .api
                .call(
                    Method::POST,
                    &format!("/orgs/{org_id}/workspaces"),
                    Some(&json!({"name": name, "plan": plan})),
                )
                .await?;
            if wait {
                w = wait_ready(&s.api, &text(w.f("id")), Duration::from_secs(timeout)).await?;
            }
            print(common.output, &w, WS_COLUMNS)
        }
        WsCommand::Get { ws, org, common } => {
            let s = session(&common.server, now)?;
            let w = workspace(&s.api, &org, &ws).await?;
            print(common.output, &w, WS_COLUMNS)
        }
        WsCommand::Delete { ws, org, common } => {
            let s = session(&common.server, now)?;
            let id = workspace_id(&s.api, &org, &ws).await?;
            let w = s
                .api
                .call(Method::DELETE, &format!("/workspaces/{id}"), None)
                .await?;
            print(common.output, &w, WS_COLUMNS)
        }
    }
}

async fn project_id(s: &Session, ws_id: &str, project: &str) -> anyhow::Result<String> {
    if project.starts_with("prj_") {
        return Ok(project.to_string());
    }
    let all = s
        .api
        .list_all(&format!("/workspaces/{ws_id}/projects"))
        .await?;
    all.iter()
        .find(|p| p.f("name").as_str() == Some(project))
        .map(|p| text(p.f("id")))
        .ok_or_else(|| anyhow!("no project named {project:?} in this workspace"))
}

async fn projects(cmd: ProjectCommand, now: jiff::Timestamp) -> anyhow::Result<()> {
    match cmd {
        ProjectCommand::List { ws, org, common } => {
            let s = session(&common.server, now)?;
            let id = workspace_id(&s.api, &org, &ws).await?;
            let all = s
                .api
                .list_all(&format!("/workspaces/{id}/projects"))
                .await?;
            print(common.output, &Value::Array(all), PROJECT_COLUMNS)
        }
        ProjectCommand::Create {
            ws,
            name,
            org,
            common,
        } => {
            let s = session(&common.server, now)?;
            let id = workspace_id(&s.api, &org, &ws).await?;
            let p = s
                .api
                .call(
                    Method::POST,
                    &format!("/workspaces/{id}/projects"),
                    Some(&json!({"name": name})),
                )
                .await?;
            print(common.output, &p, PROJECT_COLUMNS)
        }
        ProjectCommand::Delete {
            ws,
            project,
            org,
            common,
        } => {
            let s = session(&common.server, now)?;
            let id = workspace_id(&s.api, &org, &ws).await?;
            let pid = project_id(&s, &id, &project).await?;
            s.api
                .call(Method::DELETE, &format!("/projects/{pid}"), None)
                .await?;
            let done = json!({"id": pid, "name": project, "deleted": true});
            match common.output {
                Format::Table => {
                    println!("project {project} deleted");
                    Ok(())
                }
                other => print(other, &done, PROJECT_COLUMNS),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kubeconfig
// ---------------------------------------------------------------------------------------------

async fn kubeconfig(args: KubeconfigArgs, now: jiff::Timestamp) -> anyhow::Result<()> {
    let s = session(&args.common.server, now)?;
    let w = workspace(&s.api, &args.org, &args.ws).await?;
    let (id, name) = (text(w.f("id")), text(w.f("name")));
    let issued = s
        .api
        .call(
            Method::POST,
            &format!("/workspaces/{id}/kubeconfig"),
            Some(&json!({})),
        )
        .await?;
    // Whatever the server gives: the kubeconfig field of its answer, or the answer itself.
    let yaml = match &issued {
        Value::Object(o) => o
            .get("kubeconfig")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| anyhow!("the server's answer has no kubeconfig"))?,
        Value::String(text) => text.clone(),
        _ => bail!("the server's answer has no kubeconfig"),
    };
    let written = if args.merge {
        let target = super::kubeconfig::target_from(
            std::env::var("KUBECONFIG").ok(),
            std::env::var("HOME").ok(),
        )?;
        super::kubeconfig::merge_into(&target, &yaml, &name)?;
        Some(format!(
            "context {name} written to {}; use kubectl --context {name}",
            target.display()
        ))
    } else if let Some(out) = &args.out {
        creds::write_private(out, yaml.as_bytes())?;
        Some(format!(
            "kubeconfig for {name} written to {}",
            out.display()
        ))
    } else {
        None
    };
    match (args.common.output, written) {
        (Format::Table, Some(line)) => {
            println!("{line}");
            Ok(())
        }
        (Format::Table, None) => {
            print!("{yaml}");
            Ok(())
        }
        (other, _) => print(other, &issued, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_fails_on_errors_kaas_does_not_retry_and_on_retried_ones_that_last() {
        let z = Duration::ZERO;
        assert_eq!(judge("Ready", "", z), Waited::Ready);
        assert_eq!(
            judge("Provisioning", "K3K is provisioning", z),
            Waited::Waiting
        );
        let retried = "K3K could not provision the cluster (retrying): no secret";
        assert_eq!(judge("Error", retried, z), Waited::Waiting);
        assert_eq!(
            judge("Error", retried, RETRIED_ERROR_GRACE),
            Waited::Failed(retried.into())
        );
        assert_eq!(
            judge("Error", "K3K refused the cluster: bad spec", z),
            Waited::Failed("K3K refused the cluster: bad spec".into())
        );
        assert_eq!(
            judge("Error", "", z),
            Waited::Failed("no reason given".into())
        );
        assert!(matches!(judge("Deleting", "", z), Waited::Failed(_)));
    }
}
