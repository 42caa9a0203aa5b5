//! Paging through a workspace's projects as the API shows them: every project once, in name
//! order, across pages; a project member sees only their projects; a changed project is
//! listed as it is now, and a deleted one is gone (the listing copies unchanged records, and
//! whole pages until the store next commits, from memos).

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// The names on every page of `path`, following `next_cursor` with `limit` per page.
async fn all_pages(app: &TestApp, auth: &Auth, path: &str, limit: usize) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit={limit}&cursor={c}"),
            None => format!("{path}?limit={limit}"),
        };
        let r = app.call("GET", &url, auth, None).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let names: Vec<String> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        pages.push(names);
        match &r.body["next_cursor"] {
            Value::String(c) => cursor = Some(c.clone()),
            Value::Null => return pages,
            other => panic!("next_cursor is {other:?}"),
        }
        assert!(pages.len() < 20, "paging does not end");
    }
}

#[tokio::test]
async fn projects_page_in_name_order_members_see_theirs_and_changes_show_at_once() {
    let app = TestApp::new();
    let (_, owner) = app.user("owner@example.com", false).await;
    let owner = bearer(&owner);
    let org = app.create_org(&owner, "paging").await;
    let ws = app.create_workspace(&owner, &org, "prod", "standard").await;
    let mut ids = std::collections::BTreeMap::new();
    for name in ["echo", "alpha", "delta", "charlie", "bravo"] {
        let r = app
            .call(
                "POST",
                &format!("/workspaces/{ws}/projects"),
                &owner,
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        ids.insert(name, r.body["id"].as_str().unwrap().to_string());
    }
    let list = format!("/workspaces/{ws}/projects");
    let pages = all_pages(&app, &owner, &list, 2).await;
    assert_eq!(
        pages,
        vec![
            vec!["alpha", "bravo"],
            vec!["charlie", "delta"],
            vec!["echo"]
        ]
    );
    // A page that ends exactly at the last project says there is no next one.
    assert_eq!(
        all_pages(&app, &owner, &list, 5).await,
        vec![vec!["alpha", "bravo", "charlie", "delta", "echo"]]
    );

    // Listed once (remembered), then changed: the list shows the change.
    let r = app
        .call(
            "PATCH",
            &format!("/projects/{}", ids["charlie"]),
            &owner,
            Some(json!({"quota": {"cpu_millis": 500, "memory_mib": 256, "storage_gib": 1, "pods": 5}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app.call("GET", &list, &owner, None).await;
    let charlie = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "charlie")
        .cloned()
        .unwrap();
    assert_eq!(charlie["quota"]["cpu_millis"], 500, "{charlie}");
    let single = app
        .call(
            "GET",
            &format!("/projects/{}", ids["charlie"]),
            &owner,
            None,
        )
        .await;
    assert_eq!(charlie, single.body, "the list shows a project as GET does");

    // A member of two projects only: two pages of one, nothing else.
    let r = app
        .call(
            "POST",
            &format!("/orgs/{org}/invitations"),
            &owner,
            Some(json!({"email": "dev@example.com", "role": "member"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap().to_string();
    let r = app
        .call(
            "POST",
            "/invitations/accept",
            &Auth::None,
            Some(json!({"token": token, "name": "Dev", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let dev_id = r.body["id"].as_str().unwrap().to_string();
    for name in ["delta", "bravo"] {
        let r = app
            .call(
                "PUT",
                &format!("/projects/{}/members/{dev_id}", ids[name]),
                &owner,
                Some(json!({"role": "developer"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    let dev = app.login("dev@example.com").await;
    assert_eq!(
        all_pages(&app, &dev, &list, 1).await,
        vec![vec!["bravo"], vec!["delta"]]
    );
    // The same page the owner was just shown whole is the member's own page.
    let owners = all_pages(&app, &owner, &list, 5).await;
    assert_eq!(owners[0].len(), 5, "{owners:?}");
    assert_eq!(
        all_pages(&app, &dev, &list, 5).await,
        vec![vec!["bravo", "delta"]]
    );

    // A deleted project leaves the page the owner has seen before.
    let r = app
        .call(
            "DELETE",
            &format!("/projects/{}", ids["echo"]),
            &owner,
            None,
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    assert_eq!(
        all_pages(&app, &owner, &list, 5).await,
        vec![vec!["alpha", "bravo", "charlie", "delta"]]
    );
}
