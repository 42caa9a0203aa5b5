//! Issue 16's speed target, measured on the real binary with `wrk` in one run (numbers
//! printed, nothing asserted): requests per second of the bare `/healthz` handler and of an
//! authenticated `GET /api/v1/workspaces/{ws}/projects` returning 50 projects (and of one
//! returning 20), and their ratio (target: the 50-item list at least 0.5 of `/healthz`).
//! The lists are read by the organization's owner, who sees every project (the whole-page
//! memo serves them), and the 50-project workspace also by a member with a role in 25 of
//! its projects only, whose page is filtered record by record on every request.
//!
//! Run: `cargo bench --bench api_speed` (needs `wrk`: `apt-get install -y wrk`).
//! `API_SPEED_SECONDS` sets each measurement's length (default 8).

mod common;
mod seed;

use std::process::Command;
use std::sync::Arc;

use kaas::clock::SystemClock;
use kaas::domain::{OrgRole, ProjectRole};
use kaas::ops::invitations::{AcceptInvitation, NewInvitation};
use kaas::ops::orgs::NewOrg;
use kaas::ops::projects::{NewProject, ProjectRoleInput};
use kaas::ops::workspaces::NewWorkspace;
use kaas::ops::{Ops, Origin};
use kaas::store::Store;

/// Runs wrk against `url` and returns its requests per second.
fn wrk(url: &str, token: Option<&str>, seconds: u64) -> f64 {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c32", &format!("-d{seconds}s"), "--latency"]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.arg(url).output().expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "wrk saw error answers from {url}:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("api_speed: wrk is not installed (apt-get install -y wrk); nothing measured");
        return;
    }
    let seconds = std::env::var("API_SPEED_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("kaas.redb");

    // A member's workspace with 50 projects and another with 20, in a store with company:
    // 20 organizations of 10 workspaces, so lookups do not run on an empty database.
    let (ws50, ws20, token, scoped_token) = {
        let (store, _) = Store::open(&db, 8 << 20).expect("store");
        let ops = Ops::new(Arc::new(store), Arc::new(SystemClock), seed::unlimited());
        ops.seed_plans().expect("plans");
        let me = seed::member(&ops, "bench@example.com").await;
        let token = seed::read_only_token(&ops, &me).await;
        let scoped = seed::member(&ops, "scoped@example.com").await;
        let scoped_token = seed::read_only_token(&ops, &scoped).await;
        let mut listed = Vec::new();
        for o in 0..20 {
            let org = ops
                .create_org(
                    &me,
                    NewOrg {
                        name: format!("org-{o:02}"),
                        display_name: None,
                    },
                )
                .expect("org");
            for w in 0..10 {
                let ws = ops
                    .create_workspace(
                        &me,
                        org.org.id,
                        NewWorkspace {
                            name: format!("ws-{w:02}"),
                            plan: "premium".into(),
                        },
                    )
                    .expect("ws");
                if o == 7 && w < 2 {
                    if w == 0 {
                        let inv = ops
                            .invite(
                                &me,
                                org.org.id,
                                NewInvitation {
                                    email: scoped.email.clone(),
                                    role: OrgRole::Member,
                                },
                            )
                            .expect("invite");
                        let accept = AcceptInvitation {
                            token: inv.token,
                            name: None,
                            password: None,
                        };
                        ops.accept_invitation(Some(&scoped), accept, &Origin::local())
                            .await
                            .expect("accept");
                    }
                    let n = if w == 0 { 50 } else { 20 };
                    for p in 0..n {
                        let project = ops
                            .create_project(
                                &me,
                                ws.workspace.id,
                                NewProject {
                                    name: format!("project-{p:02}"),
                                    quota: None,
                                },
                            )
                            .expect("project");
                        if w == 0 && p % 2 == 0 {
                            ops.put_project_member(
                                &me,
                                project.id,
                                scoped.user_id,
                                ProjectRoleInput {
                                    role: ProjectRole::Developer,
                                },
                            )
                            .expect("project member");
                        }
                    }
                    listed.push(ws.workspace.id);
                }
            }
        }
        (listed[0], listed[1], token, scoped_token)
    };

    let (mut child, base) = common::serve_ready(dir.path()).await;
    let client = reqwest::Client::new();
    let list = |ws| format!("{base}/api/v1/workspaces/{ws}/projects?limit=50");
    let listed = async |token: &str| {
        let body: serde_json::Value = client
            .get(list(ws50))
            .bearer_auth(token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        body["items"].as_array().map(Vec::len)
    };
    assert_eq!(listed(&token).await, Some(50));
    assert_eq!(listed(&scoped_token).await, Some(25));

    // Warm up once, then measure the three in the same run.
    wrk(&format!("{base}/healthz"), None, 1);
    let healthz = wrk(&format!("{base}/healthz"), None, seconds);
    let fifty = wrk(&list(ws50), Some(&token), seconds);
    let twenty = wrk(&list(ws20), Some(&token), seconds);
    let scoped = wrk(&list(ws50), Some(&scoped_token), seconds);
    println!("wrk -t2 -c32 -d{seconds}s on loopback, release binary, same run:");
    println!("  GET /healthz: {healthz:.0} requests/s");
    println!(
        "  GET /api/v1/workspaces/{{ws}}/projects, 50 projects, authenticated: {fifty:.0} requests/s, {:.2} of /healthz (target >= 0.5)",
        fifty / healthz
    );
    println!(
        "  GET /api/v1/workspaces/{{ws}}/projects, 20 projects, authenticated: {twenty:.0} requests/s, {:.2} of /healthz",
        twenty / healthz
    );
    println!(
        "  the same 50-project workspace read by a member of 25 of its projects (25 listed): {scoped:.0} requests/s, {:.2} of /healthz",
        scoped / healthz
    );
    let _ = child.kill();
    let _ = child.wait();
}
