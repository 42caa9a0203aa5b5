//! The OpenAPI document against what the API does (issue 16, finding 14): every reference
//! resolves, list parameters are optional query parameters whose range the server enforces,
//! every operation lists the error answers it can give, inputs carry the constraints the
//! domain checks, and the operations schemathesis found answering otherwise now agree.
//! (tests/schemathesis fuzzes the whole document against the real binary.)

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Auth, TestApp, bearer};

async fn document(app: &TestApp) -> Value {
    let r = app.call("GET", "/openapi.json", &Auth::None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

/// Every `$ref` string anywhere under `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// (method, path, operation) for every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((method.clone(), path.clone(), op.clone()));
        }
    }
    ops
}

#[tokio::test]
async fn every_reference_in_the_document_resolves() {
    let doc = document(&TestApp::new()).await;
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let missing: Vec<&String> = all
        .iter()
        .filter(|r| {
            r.strip_prefix("#/components/schemas/")
                .is_none_or(|name| !schemas.contains_key(name))
        })
        .collect();
    assert!(missing.is_empty(), "unresolvable: {missing:?}");
}

#[tokio::test]
async fn every_path_parameter_is_in_its_path_and_every_name_in_a_path_is_declared() {
    let doc = document(&TestApp::new()).await;
    let mut wrong = Vec::new();
    for (method, path, op) in operations(&doc) {
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        for p in &params {
            let name = p["name"].as_str().unwrap();
            if p["in"] == "path" && !path.contains(&format!("{{{name}}}")) {
                wrong.push(format!("{method} {path}: `{name}` declared in the path"));
            }
        }
        for name_in_path in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
            if !params
                .iter()
                .any(|p| p["in"] == "path" && p["name"] == name_in_path)
            {
                wrong.push(format!("{method} {path}: `{name_in_path}` not declared"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn list_parameters_are_optional_query_parameters_with_their_range() {
    let doc = document(&TestApp::new()).await;
    let mut lists = 0;
    for (method, path, op) in operations(&doc) {
        for p in op["parameters"].as_array().cloned().unwrap_or_default() {
            let name = p["name"].as_str().unwrap();
            if name == "limit" || name == "cursor" {
                assert_eq!(p["in"], "query", "{method} {path} {name}");
                assert_ne!(p["required"], true, "{method} {path} {name}");
            }
            if name == "limit" {
                lists += 1;
                assert_eq!(p["schema"]["minimum"], 1, "{method} {path}");
                assert_eq!(p["schema"]["maximum"], 200, "{method} {path}");
            }
        }
    }
    assert!(lists >= 6, "only {lists} listings take a limit");
}

#[tokio::test]
async fn a_limit_outside_the_documented_range_is_refused() {
    let app = TestApp::new();
    let (_, admin) = app.user("root@example.com", true).await;
    let auth = bearer(&admin);
    for path in ["/orgs", "/users", "/audit"] {
        for bad in ["0", "201", "-1", "many"] {
            let r = app
                .call("GET", &format!("{path}?limit={bad}"), &auth, None)
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}?limit={bad}");
            assert_eq!(r.field(), "limit", "{path}?limit={bad}: {:?}", r.body);
        }
        for good in ["1", "200"] {
            let r = app
                .call("GET", &format!("{path}?limit={good}"), &auth, None)
                .await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{path}?limit={good}: {:?}",
                r.body
            );
        }
    }
}

#[tokio::test]
async fn every_operation_lists_the_errors_it_can_answer() {
    let doc = document(&TestApp::new()).await;
    let open = [
        ("post", "/setup"),
        ("post", "/auth/login"),
        ("post", "/auth/login/code"),
        ("post", "/auth/token"),
        ("post", "/auth/device"),
        ("post", "/auth/device/token"),
        ("post", "/invitations/lookup"),
    ];
    for (method, path, op) in operations(&doc) {
        let has = |status: &str| op["responses"].get(status).is_some();
        let is_open = open.contains(&(method.as_str(), path.as_str()));
        if is_open {
            assert_eq!(
                op["security"],
                json!([]),
                "{method} {path} needs no credentials"
            );
        } else {
            for s in ["401", "403"] {
                assert!(has(s), "{method} {path} does not list {s}");
            }
        }
        if op.get("requestBody").is_some() {
            for s in ["400", "413", "415", "422"] {
                assert!(has(s), "{method} {path} does not list {s}");
            }
        }
        if path.contains('{') {
            assert!(has("404"), "{method} {path} does not list 404");
        }
        if method != "get" && !is_open {
            assert!(has("409"), "{method} {path} does not list 409");
        }
    }
    let login = &doc["paths"]["/auth/login"]["post"]["responses"];
    assert!(login.get("429").is_some(), "sign-in is throttled");
    let kubeconfig = &doc["paths"]["/workspaces/{ws}/kubeconfig"]["post"]["responses"];
    assert!(kubeconfig.get("503").is_some(), "the host may be away");
    let invoice = &doc["paths"]["/invoices/{id}"]["get"]["responses"]["200"]["content"];
    for t in ["application/json", "text/csv"] {
        assert!(invoice.get(t).is_some(), "an invoice comes as {t}");
    }
}

#[tokio::test]
async fn inputs_carry_the_constraints_the_domain_checks() {
    let doc = document(&TestApp::new()).await;
    let schemas = &doc["components"]["schemas"];
    let dns = "^[a-z]([-a-z0-9]*[a-z0-9])?$";
    for (schema, max) in [("NewOrg", 40), ("NewWorkspace", 40), ("NewProject", 63)] {
        let name = &schemas[schema]["properties"]["name"];
        assert_eq!(name["pattern"], dns, "{schema}.name");
        assert_eq!(name["maxLength"], max, "{schema}.name");
    }
    for (schema, field) in [
        ("NewUser", "name"),
        ("NewToken", "name"),
        ("OrgPatch", "display_name"),
        ("ProfilePatch", "name"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["minLength"], 1,
            "{schema}.{field}"
        );
    }
    for schema in ["NewUser", "NewInvitation", "SetupInput"] {
        let email = schemas[schema]["properties"]["email"]["pattern"]
            .as_str()
            .unwrap_or_default();
        assert!(email.contains('@'), "{schema}.email: {email:?}");
    }
    // An unsigned count has no int32 ceiling: the server takes any u32.
    let limits = &schemas["OrgLimits"]["properties"]["max_workspaces"];
    assert_ne!(limits["format"], "int32", "{limits}");
}

#[tokio::test]
async fn logout_with_an_api_token_succeeds_and_leaves_the_token_valid() {
    let app = TestApp::new();
    let (_, token) = app.user("a@example.com", false).await;
    let r = app
        .call("POST", "/auth/logout", &bearer(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    let r = app.call("GET", "/me", &bearer(&token), None).await;
    assert_eq!(r.status, StatusCode::OK);
    // With a session it still ends the session.
    let session = app.login("a@example.com").await;
    let r = app.call("POST", "/auth/logout", &session, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.call("GET", "/me", &session, None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_body_must_be_a_json_object_of_bounded_depth() {
    let app = TestApp::new();
    let (_, admin) = app.user("root@example.com", true).await;
    let auth = bearer(&admin);
    let org = app.create_org(&auth, "acme").await;
    // serde would fill the struct from an array of its fields.
    let r = app
        .call(
            "PUT",
            &format!("/orgs/{org}/limits"),
            &auth,
            Some(json!([null, null])),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = app
        .call(
            "PUT",
            &format!("/orgs/{org}/limits"),
            &auth,
            Some(json!("text")),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    // Deeper than server.limits.max_json_depth (32 by default), yet well-formed and small.
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({ "a": deep });
    }
    let r = app
        .call(
            "PUT",
            &format!("/orgs/{org}/limits"),
            &auth,
            Some(json!({"max_workspaces": deep})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.code(), "too_deep");
}
