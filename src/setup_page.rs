//! The first-run page behind the setup link: a plain HTML form (no script) that creates the
//! first platform administrator through `ops::complete_setup`. The full console replaces the
//! look later; the flow and its checks are the real ones.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::api::extract::ClientOrigin;
use crate::ops::OpsError;
use crate::ops::setup::SetupInput;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct TokenParam {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct SetupForm {
    token: String,
    email: String,
    name: String,
    password: String,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;background:#f4f6f8;color:#1c2430;margin:0}\
main{max-width:28rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:10px;box-shadow:0 1px 4px #0002}\
h1{font-size:1.4rem;margin-top:0}label{display:block;margin-top:1rem;font-weight:600}\
input{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #9aa5b1;border-radius:6px;font:inherit}\
input:focus{outline:3px solid #2f6feb55;border-color:#2f6feb}button{margin-top:1.5rem;padding:.6rem 1.2rem;\
background:#1f5fd6;color:#fff;border:0;border-radius:6px;font:inherit;font-weight:600;cursor:pointer}\
.err{color:#b42318;font-size:.9rem;margin:.25rem 0 0}.ok{color:#067647}";

fn page(body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width,initial-scale=1\"><title>kaas setup</title><style>{STYLE}</style>\
         </head><body><main>{body}</main></body></html>"
    ))
}

fn form(token: &str, email: &str, name: &str, error: Option<(&str, &str)>) -> Html<String> {
    let err_for = |field: &str| match error {
        Some((f, m)) if f == field => format!("<p class=\"err\" id=\"{field}-err\">{}</p>", esc(m)),
        _ => String::new(),
    };
    let general = match error {
        Some((f, m)) if !["email", "name", "password"].contains(&f) => {
            format!("<p class=\"err\">{}</p>", esc(m))
        }
        _ => String::new(),
    };
    page(&format!(
        "<h1>Set up kaas</h1><p>Create the first platform administrator.</p>{general}\
         <form method=\"post\" action=\"/setup\"><input type=\"hidden\" name=\"token\" value=\"{t}\">\
         <label for=\"email\">E-mail</label><input id=\"email\" name=\"email\" type=\"email\" required value=\"{e}\">{ee}\
         <label for=\"name\">Name</label><input id=\"name\" name=\"name\" required value=\"{n}\">{ne}\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" \
         required minlength=\"8\" autocomplete=\"new-password\">{pe}\
         <button type=\"submit\">Create administrator</button></form>",
        t = esc(token),
        e = esc(email),
        n = esc(name),
        ee = err_for("email"),
        ne = err_for("name"),
        pe = err_for("password"),
    ))
}

fn gone() -> Response {
    (
        StatusCode::GONE,
        page(
            "<h1>This setup link no longer works</h1><p>It was used, replaced by a restart of \
              kaas, or has expired. If no administrator exists yet, restart kaas for a new link, \
              or create one with <code>kaas user create --admin</code>.</p>",
        ),
    )
        .into_response()
}

pub async fn show(
    State(s): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<TokenParam>,
) -> Response {
    match s.ops.setup_token_valid(&q.token) {
        Ok(true) => form(&q.token, "", "", None).into_response(),
        Ok(false) => gone(),
        Err(e) => crate::api::error::ApiError::from(e).into_response(),
    }
}

pub async fn submit(
    State(s): State<AppState>,
    ClientOrigin(o): ClientOrigin,
    Form(f): Form<SetupForm>,
) -> Response {
    let input = SetupInput {
        token: f.token.clone(),
        email: f.email.clone(),
        name: f.name.clone(),
        password: f.password,
    };
    match s.ops.complete_setup(input, &o).await {
        Ok(u) => page(&format!(
            "<h1 class=\"ok\">Administrator created</h1><p>Sign in as <strong>{}</strong> through \
             the API (<code>POST /api/v1/auth/login</code>); see the README for a walk-through.</p>",
            esc(&u.email)
        ))
        .into_response(),
        Err(OpsError::Invalid { field, message }) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            form(&f.token, &f.email, &f.name, Some((field, &message))),
        )
            .into_response(),
        Err(OpsError::Unauthenticated(_)) | Err(OpsError::Conflict(_)) => gone(),
        Err(e) => crate::api::error::ApiError::from(e).into_response(),
    }
}
