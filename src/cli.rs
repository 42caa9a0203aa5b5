//! The command line: `serve`, `config check|show|default`, `version`, `healthcheck`,
//! `user create|reset-password|reset-mfa`, `backup [verify]`, `restore`, `audit verify`,
//! `doctor`, `completions`, `credential` (kubectl's exec plugin), and the shell client's
//! commands (`crate::client`). Every failure comes back as one readable
//! line and a non-zero exit code.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::{Config, LogFormat, Overrides};
use crate::ops::users::{NewUser, PasswordReset};
use crate::ops::{Actor, AuthVia};

/// kaas — Kubernetes-as-a-Service on one K3s box.
#[derive(Parser, Debug)]
#[command(name = "kaas", version = crate::VERSION, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
struct ConfigArgs {
    /// Configuration file (TOML). Default: none (built-in defaults), or $KAAS_CONFIG.
    #[arg(long, short = 'c', env = "KAAS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory holding the database and generated certificates.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: JSON API, health endpoints, metrics.
    Serve {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Address to listen on, e.g. 127.0.0.1:8080 or 0.0.0.0:8443.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Log format: auto (human on a terminal, JSON otherwise), human, json.
        #[arg(long, value_name = "FORMAT")]
        log_format: Option<LogFormat>,
    },
    /// Inspect or check configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the version.
    Version,
    /// Exit 0 when the local server answers /readyz with 200.
    Healthcheck {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// How long to wait for an answer, in seconds.
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
    /// Create users or reset passwords from the shell (the server must be stopped).
    #[command(subcommand)]
    User(UserCommand),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    #[command(alias = "completion")]
    Completions { shell: clap_complete::Shell },
    /// Back up the database (through the running server, or from the file when none runs).
    Backup(BackupArgs),
    /// Replace the database with a backup (the server must be stopped; the old file is kept).
    Restore {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The backup file.
        file: PathBuf,
    },
    /// Check the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Check the host and this box; exit 0 if all pass, 1 on warnings, 2 on failures.
    Doctor {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// The shell client: login, logout, org, ws, project, kubeconfig (see `crate::client`).
    #[command(flatten)]
    Client(crate::client::ClientCommand),
    /// kubectl's exec credential plugin (run by the kubeconfigs kaas hands out): prints an
    /// ExecCredential with a short-lived token for the workspace's virtual cluster, using the
    /// sign-in `kaas login` keeps.
    Credential {
        /// kaas's base URL.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The workspace id (`ws_…`).
        #[arg(long, value_name = "ID")]
        workspace: String,
    },
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    #[command(flatten)]
    cfg: ConfigArgs,
    /// Where to write the backup. Default: a timestamped file in backup.dir. With a running
    /// server, the server writes it: the path must be writable by the service.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum BackupCommand {
    /// Check that a backup file is complete and readable (it is not changed).
    Verify { file: PathBuf },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Walk the audit log's hash chain: "intact (N records)" and exit 0, or the first record
    /// where it breaks and exit 2. Reads the database of a stopped server, or a copy.
    Verify {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// A database file or backup to check instead of the configured database.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// An exit code other than 1 that the caller should use; the message is printed as usual.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitWith {
    pub code: u8,
    pub message: String,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Load and validate the configuration without starting anything.
    Check {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Print the effective configuration (secrets redacted).
    Show {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Print a documented default configuration file.
    Default,
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Make the user a platform administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Set a new password (read from standard input), end the user's sessions and revoke
    /// their API tokens.
    ResetPassword {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[arg(long)]
        email: String,
    },
    /// Turn off the user's two-step sign-in (a lost phone): they sign in with their password
    /// and, where `[mfa] require` applies, set it up again. Audited.
    ResetMfa {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[arg(long)]
        email: String,
    },
}

fn load(
    args: &ConfigArgs,
    listen: Option<SocketAddr>,
    log_format: Option<LogFormat>,
) -> anyhow::Result<Config> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let overrides = Overrides {
        listen,
        data_dir: args.data_dir.clone(),
        log_format,
    };
    Ok(Config::load(args.config.as_deref(), &env, &overrides)?)
}

fn read_password() -> anyhow::Result<String> {
    let pw = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ").context("reading the password")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if pw.is_empty() {
        bail!("no password given on standard input");
    }
    Ok(pw)
}

/// The shell acts as a platform administrator: whoever can run kaas on the box owns it.
fn shell_actor() -> Actor {
    Actor {
        user_id: crate::domain::UserId(0),
        email: "shell".into(),
        platform_admin: true,
        via: AuthVia::Shell,
        source: "local shell".into(),
    }
}

async fn user_command(cmd: UserCommand) -> anyhow::Result<()> {
    let cfg_args = match &cmd {
        UserCommand::Create { cfg, .. }
        | UserCommand::ResetPassword { cfg, .. }
        | UserCommand::ResetMfa { cfg, .. } => cfg.clone(),
    };
    let cfg = load(&cfg_args, None, None)?;
    let ops = crate::app::open_ops(&cfg, Arc::new(SystemClock)).map_err(|e| {
        if e.to_string().contains("already open") {
            anyhow::anyhow!(
                "the database {} is in use by a running kaas server; stop it first (systemctl stop kaas), or use the API (POST /api/v1/users)",
                cfg.db_path().display()
            )
        } else {
            e
        }
    })?;
    let actor = shell_actor();
    match cmd {
        UserCommand::Create {
            email, name, admin, ..
        } => {
            let password = read_password()?;
            let u = ops
                .create_user(
                    &actor,
                    NewUser {
                        email,
                        name,
                        password,
                        platform_admin: admin,
                    },
                )
                .await?;
            println!(
                "created user {} ({}){}",
                u.email,
                u.id,
                if u.platform_admin {
                    ", platform administrator"
                } else {
                    ""
                }
            );
        }
        UserCommand::ResetPassword { email, .. } => {
            let id = ops
                .user_id_by_email(&email)?
                .ok_or_else(|| anyhow::anyhow!("no user with e-mail {email}"))?;
            let password = read_password()?;
            let done = ops
                .reset_password(&actor, id, PasswordReset { password })
                .await?;
            println!("password reset for {email}; {done}");
        }
        UserCommand::ResetMfa { email, .. } => {
            let id = ops
                .user_id_by_email(&email)?
                .ok_or_else(|| anyhow::anyhow!("no user with e-mail {email}"))?;
            ops.reset_mfa(&actor, id)?;
            println!("two-step sign-in turned off for {email}");
        }
    }
    Ok(())
}

/// Runs the command line; the caller maps the result to an exit code.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Credential { server, workspace } => {
            let paths = crate::credential::Paths::from_env(|k| std::env::var(k).ok())?;
            let exec_info = std::env::var("KUBERNETES_EXEC_INFO").ok();
            let out =
                crate::credential::run(&server, &workspace, &paths, exec_info.as_deref()).await?;
            println!("{out}");
            Ok(())
        }
        Command::Serve {
            cfg,
            listen,
            log_format,
        } => {
            let cfg = load(&cfg, listen, log_format)?;
            crate::telemetry::init_logging(&cfg.log)?;
            crate::app::serve(cfg).await
        }
        Command::Config(ConfigCommand::Check { cfg }) => {
            let c = load(&cfg, None, None)?;
            println!(
                "configuration OK: listening on {} ({}), data in {}",
                c.server.listen,
                if c.uses_tls() { "HTTPS" } else { "plain HTTP" },
                c.data.dir.display()
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Show { cfg }) => {
            let c = load(&cfg, None, None)?;
            print!(
                "{}",
                toml::to_string_pretty(&c).context("rendering the configuration")?
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Default) => {
            print!("{}", Config::to_toml_commented());
            Ok(())
        }
        Command::Version => {
            println!("kaas {}", crate::VERSION);
            Ok(())
        }
        Command::Healthcheck { cfg, timeout } => {
            let c = load(&cfg, None, None)?;
            let report = crate::healthcheck::probe_ready(&c, Duration::from_secs(timeout)).await?;
            if report.is_ready() {
                println!("ready: {}", report.body);
                Ok(())
            } else {
                bail!("not ready (HTTP {}): {}", report.status, report.body)
            }
        }
        Command::User(cmd) => user_command(cmd).await,
        Command::Backup(BackupArgs {
            command: Some(BackupCommand::Verify { file }),
            ..
        }) => {
            let b = crate::backup::verify(&file)?;
            println!("backup OK: {}", crate::backup::describe(&b));
            Ok(())
        }
        Command::Backup(BackupArgs {
            command: None,
            cfg,
            output,
        }) => {
            let c = load(&cfg, None, None)?;
            let (b, via) = crate::backup::take(&c, output.as_deref()).await?;
            let how = match via {
                crate::backup::Via::RunningServer => "taken by the running server",
                crate::backup::Via::DatabaseFile => "taken from the database file",
            };
            println!(
                "backup written ({how}, {} ms): {}",
                b.took_ms,
                crate::backup::describe(&b)
            );
            Ok(())
        }
        Command::Restore { cfg, file } => {
            let c = load(&cfg, None, None)?;
            let out = crate::backup::restore(&c, &file)?;
            println!(
                "restored {} into {}",
                file.display(),
                crate::backup::describe(&out.restored)
            );
            if let Some(prev) = out.previous {
                println!("the previous database was kept as {}", prev.display());
            }
            Ok(())
        }
        Command::Audit(AuditCommand::Verify { cfg, file }) => {
            let path = match file {
                Some(f) => f,
                None => load(&cfg, None, None)?.db_path(),
            };
            let report = crate::store::backup::verify_audit_file(&path).map_err(|e| match e {
                crate::store::StoreError::Open { why, path } if why.contains("already open") => {
                    anyhow::anyhow!(
                        "the database {} is in use by a running kaas; verify a copy (kaas backup, \
                         then kaas audit verify --file BACKUP) or ask the server (GET /api/v1/audit/verify)",
                        path.display()
                    )
                }
                crate::store::StoreError::Open { why, path } if why.contains("cleanly closed") => {
                    anyhow::anyhow!(
                        "{} was not closed cleanly (copied while a server had it open?); verify a \
                         backup instead (kaas backup, then kaas audit verify --file BACKUP)",
                        path.display()
                    )
                }
                other => other.into(),
            })?;
            if report.intact {
                println!("audit log {}: {}", path.display(), report.describe());
                Ok(())
            } else {
                Err(ExitWith {
                    code: 2,
                    message: format!("audit log {}: {}", path.display(), report.describe()),
                }
                .into())
            }
        }
        Command::Doctor { cfg } => {
            let c = load(&cfg, None, None)?;
            let _ = rustls::crypto::ring::default_provider().install_default();
            let report = crate::doctor::run(&c).await;
            print!("{}", report.render());
            let worst = report.worst();
            match worst {
                crate::doctor::Status::Pass => Ok(()),
                other => Err(ExitWith {
                    code: other.exit_code(),
                    message: format!(
                        "doctor: the worst result is {}; see the fixes above",
                        other.as_str()
                    ),
                }
                .into()),
            }
        }
        Command::Client(cmd) => crate::client::run(cmd).await,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kaas", &mut std::io::stdout());
            Ok(())
        }
    }
}
