//! What the benches that fill a store share: use-case settings without the caps a bench of
//! many workspaces exceeds on purpose, the shell's actor, and an ordinary member (with a
//! read-only API token where the bench calls the API).
// Each bench uses the part it needs.
#![allow(dead_code)]

use kaas::domain::{TokenScope, UserId};
use kaas::ops::tokens::NewToken;
use kaas::ops::users::NewUser;
use kaas::ops::{Actor, AuthVia, Ops, Settings};

/// Every bench member's password.
pub const PASSWORD: &str = "measured by the stopwatch";

/// The use cases' settings without the per-user organization and box-wide workspace caps,
/// which a bench of many workspaces exceeds on purpose.
pub fn unlimited() -> Settings {
    Settings {
        max_orgs_per_user: 0,
        max_workspaces_total: 0,
        ..Settings::default()
    }
}

/// The platform administrator at the shell (`kaas user create` and the like).
pub fn shell() -> Actor {
    Actor {
        user_id: UserId(0),
        email: "bench".into(),
        platform_admin: true,
        via: AuthVia::Shell,
        source: "bench".into(),
    }
}

/// A new ordinary user `email`, acting for themselves.
pub async fn member(ops: &Ops, email: &str) -> Actor {
    let u = ops
        .create_user(
            &shell(),
            NewUser {
                email: email.into(),
                name: "Bench".into(),
                password: PASSWORD.into(),
                platform_admin: false,
            },
        )
        .await
        .expect("user");
    Actor {
        user_id: u.id,
        email: u.email.clone(),
        platform_admin: false,
        via: AuthVia::Shell,
        source: "bench".into(),
    }
}

/// A read-only API token of `me`, valid for a day: the secret a client sends.
pub async fn read_only_token(ops: &Ops, me: &Actor) -> String {
    ops.create_token(
        me,
        NewToken {
            name: "bench".into(),
            scope: TokenScope::ReadOnly,
            expires_in_days: Some(1),
            current_password: PASSWORD.into(),
        },
    )
    .await
    .expect("token")
    .secret
}
