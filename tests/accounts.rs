//! eNZi's accounts API (`/enzi/v0/accounts`): users, organizations, org
//! members, teams and team members, over HTTP on a fresh database per test.

mod common;

use common::{ADMIN, ADMIN_PASSWORD, TestApp, assert_error, send};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ACCOUNTS: &str = "/enzi/v0/accounts";
const ALICE_PASSWORD: &str = "alice-wonderland-2024";
const BOB_PASSWORD: &str = "bob-the-builder-2024";
const CAROL_PASSWORD: &str = "carol-singer-2024";

fn account(name: &str) -> String {
    format!("{ACCOUNTS}/{name}")
}

async fn create_user(app: &TestApp, name: &str, password: &str) -> Value {
    let (status, body) = send(
        app.admin()
            .post(ACCOUNTS, &json!({"name": name, "password": password})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn create_org(app: &TestApp, name: &str) -> Value {
    let (status, body) = send(
        app.admin()
            .post(ACCOUNTS, &json!({"name": name, "isOrg": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn all_accounts(app: &TestApp) -> Value {
    let (status, body) = send(app.admin().get(&format!("{ACCOUNTS}?limit=1000"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|item| {
            item.get("member")
                .unwrap_or(item)
                .get("name")
                .and_then(Value::as_str)
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The account JSON without the fields that differ on every run.
fn stable(mut account: Value) -> Value {
    let object = account.as_object_mut().unwrap();
    let id = object.remove("id").unwrap();
    assert!(uuid::Uuid::parse_str(id.as_str().unwrap()).is_ok(), "{id}");
    let created = object.remove("createdAt").unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created.as_str().unwrap()).is_ok(),
        "{created}"
    );
    assert!(created.as_str().unwrap().ends_with('Z'), "{created}");
    account
}

#[tokio::test]
async fn users_and_orgs_are_created_shown_changed_and_deleted() {
    let app = TestApp::spawn().await;
    let (status, alice) = send(app.admin().post(
        ACCOUNTS,
        &json!({"name": "alice", "password": ALICE_PASSWORD, "fullName": "Alice Liddell",
                "isOrg": false, "isAdmin": false, "isActive": true}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{alice}");
    assert_eq!(
        stable(alice.clone()),
        json!({"name": "alice", "fullName": "Alice Liddell", "isOrg": false, "isAdmin": false,
               "isActive": true, "isImported": false})
    );
    let (status, org) = send(app.admin().post(
        ACCOUNTS,
        &json!({"name": "wonderland", "isOrg": true, "fullName": "Wonderland Inc."}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    assert_eq!(
        stable(org.clone()),
        json!({"name": "wonderland", "fullName": "Wonderland Inc.", "isOrg": true,
               "isAdmin": false, "isActive": true, "isImported": false})
    );

    // Anyone logged in can look accounts up; the new user can log in.
    let alice_client = app.caller("alice", ALICE_PASSWORD);
    assert_eq!(send(alice_client.get(&account("alice"))).await.1, alice);
    assert_eq!(send(alice_client.get(&account("wonderland"))).await.1, org);
    assert_eq!(
        names(&send(alice_client.get(ACCOUNTS)).await.1, "accounts"),
        ["admin", "alice", "wonderland"]
    );

    let (status, changed) = send(app.admin().patch(
        &account("alice"),
        &json!({"fullName": "Alice P. Liddell", "isAdmin": true}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["fullName"], "Alice P. Liddell");
    assert_eq!(changed["isAdmin"], true);
    assert_eq!(changed["id"], alice["id"], "PATCH keeps the identity");
    assert_eq!(changed["createdAt"], alice["createdAt"]);
    let (status, org_changed) = send(app.admin().patch(
        &account("wonderland"),
        &json!({"fullName": "Wonderland Ltd.", "isActive": false}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{org_changed}");
    assert_eq!(org_changed["fullName"], "Wonderland Ltd.");
    assert_eq!(org_changed["isActive"], false);

    for name in ["alice", "wonderland"] {
        let response = app.admin().delete(&account(name)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(response.bytes().await.unwrap().is_empty());
        assert_error(
            &send(app.admin().get(&account(name))).await,
            404,
            "NO_SUCH_ACCOUNT",
        );
        assert_error(
            &send(app.admin().delete(&account(name))).await,
            404,
            "NO_SUCH_ACCOUNT",
        );
    }
    assert_error(
        &send(
            app.admin()
                .patch(&account("alice"), &json!({"fullName": "x"})),
        )
        .await,
        404,
        "NO_SUCH_ACCOUNT",
    );
    // A deleted user can no longer log in.
    assert_error(
        &send(alice_client.get(ACCOUNTS)).await,
        401,
        "NOT_AUTHENTICATED",
    );
    assert_eq!(names(&all_accounts(&app).await, "accounts"), ["admin"]);
    app.stop().await;
}

#[tokio::test]
async fn lists_filter_and_page_by_name() {
    let app = TestApp::spawn().await;
    create_user(&app, "bob", BOB_PASSWORD).await;
    create_user(&app, "alice", ALICE_PASSWORD).await;
    create_user(&app, "dave", "dave-password").await;
    create_org(&app, "acme").await;
    create_org(&app, "zeta").await;
    send(
        app.admin()
            .patch(&account("dave"), &json!({"isActive": false})),
    )
    .await;
    send(
        app.admin()
            .patch(&account("bob"), &json!({"isAdmin": true})),
    )
    .await;

    let cases = [
        (None, vec!["acme", "admin", "alice", "bob", "dave", "zeta"]),
        (
            Some("all"),
            vec!["acme", "admin", "alice", "bob", "dave", "zeta"],
        ),
        (Some("users"), vec!["admin", "alice", "bob", "dave"]),
        (Some("orgs"), vec!["acme", "zeta"]),
        (Some("admins"), vec!["admin", "bob"]),
        (Some("non-admins"), vec!["alice", "dave"]),
        (Some("active-users"), vec!["admin", "alice", "bob"]),
        (Some("inactive-users"), vec!["dave"]),
    ];
    for (filter, expected) in cases {
        let path = match filter {
            Some(filter) => format!("{ACCOUNTS}?filter={filter}"),
            None => ACCOUNTS.to_owned(),
        };
        let (status, list) = send(app.admin().get(&path)).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(names(&list, "accounts"), expected, "{filter:?}");
        assert_eq!(list["nextPageStart"], "", "{filter:?}");
    }

    // Pages of two: each ends with the name the next one starts after.
    let mut seen = Vec::new();
    let mut start = String::new();
    loop {
        let (status, page) = send(
            app.admin()
                .get(&format!("{ACCOUNTS}?limit=2&start={start}")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page_names = names(&page, "accounts");
        assert!(page_names.len() <= 2);
        seen.extend(page_names.clone());
        start = page["nextPageStart"].as_str().unwrap().to_owned();
        if start.is_empty() {
            break;
        }
        assert_eq!(&start, page_names.last().unwrap());
    }
    assert_eq!(seen, ["acme", "admin", "alice", "bob", "dave", "zeta"]);
    let (_, page) = send(
        app.admin()
            .get(&format!("{ACCOUNTS}?filter=users&start=alice&limit=1")),
    )
    .await;
    assert_eq!(names(&page, "accounts"), ["bob"]);
    assert_eq!(page["nextPageStart"], "bob");
    // The default page holds ten.
    for i in 0..10 {
        create_org(&app, &format!("org{i:02}")).await;
    }
    let (_, page) = send(app.admin().get(ACCOUNTS)).await;
    assert_eq!(page["accounts"].as_array().unwrap().len(), 10);
    assert_ne!(page["nextPageStart"], "");

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-5", "limit"),
        ("limit=ten", "limit"),
        ("filter=everyone", "filter"),
        ("filter=", "filter"),
        ("start=%00", "start"),
        ("limt=5", "limt"),
    ] {
        let response = send(app.admin().get(&format!("{ACCOUNTS}?{query}"))).await;
        let error = assert_error(&response, 400, "INVALID_PARAMETERS");
        assert_eq!(error["detail"]["field"], field, "{query}: {error}");
    }
    app.stop().await;
}

#[tokio::test]
async fn refused_accounts_change_nothing() {
    let app = TestApp::spawn().await;
    create_user(&app, "alice", ALICE_PASSWORD).await;
    let before = all_accounts(&app).await;
    let long_name = "a".repeat(101);
    let cases = [
        (json!({"password": "long-enough-pw"}), "name"),
        (json!({"name": "", "password": "long-enough-pw"}), "name"),
        (json!({"name": "Bob", "password": "long-enough-pw"}), "name"),
        (
            json!({"name": "-bob", "password": "long-enough-pw"}),
            "name",
        ),
        (
            json!({"name": ".bob", "password": "long-enough-pw"}),
            "name",
        ),
        (
            json!({"name": "bob smith", "password": "long-enough-pw"}),
            "name",
        ),
        (
            json!({"name": "bob/x", "password": "long-enough-pw"}),
            "name",
        ),
        (json!({"name": "bøb", "password": "long-enough-pw"}), "name"),
        (
            json!({"name": long_name, "password": "long-enough-pw"}),
            "name",
        ),
        (json!({"name": 7, "password": "long-enough-pw"}), "name"),
        (json!({"name": null, "password": "long-enough-pw"}), "name"),
        (json!({"name": "bob"}), "password"),
        (json!({"name": "bob", "password": "short"}), "password"),
        (
            json!({"name": "bob", "password": "x".repeat(257)}),
            "password",
        ),
        (json!({"name": "bob", "password": null}), "password"),
        (json!({"name": "bob", "password": 12345678}), "password"),
        (
            json!({"name": "bob", "password": "long-enough-pw", "fullName": "x".repeat(201)}),
            "fullName",
        ),
        (
            json!({"name": "bob", "password": "long-enough-pw", "fullName": "a\u{0}b"}),
            "fullName",
        ),
        (
            json!({"name": "bob", "password": "long-enough-pw", "isAdmin": "yes"}),
            "isAdmin",
        ),
        (
            json!({"name": "bob", "password": "long-enough-pw", "isActive": null}),
            "isActive",
        ),
        (
            json!({"name": "bob", "password": "long-enough-pw", "isImported": false}),
            "isImported",
        ),
        (
            json!({"name": "bob", "password": "long-enough-pw", "id": "x"}),
            "id",
        ),
        (
            json!({"name": "bobs", "isOrg": true, "password": "long-enough-pw"}),
            "password",
        ),
        (
            json!({"name": "bobs", "isOrg": true, "isAdmin": true}),
            "isAdmin",
        ),
        (json!({"name": "bobs", "isOrg": "true"}), "isOrg"),
        (json!(["bob"]), "body"),
        (json!("bob"), "body"),
    ];
    for (body, field) in cases {
        let response = send(app.admin().post(ACCOUNTS, &body)).await;
        let error = assert_error(&response, 400, "INVALID_PARAMETERS");
        assert_eq!(error["detail"]["field"], field, "{body}: {error}");
        assert!(
            error["message"].as_str().unwrap().starts_with(field),
            "{body}: {error}"
        );
        assert_eq!(
            all_accounts(&app).await,
            before,
            "{body} changed the accounts"
        );
    }

    // Users and organizations share one namespace.
    for body in [
        json!({"name": "alice", "password": "another-password"}),
        json!({"name": "alice", "isOrg": true}),
    ] {
        assert_error(
            &send(app.admin().post(ACCOUNTS, &body)).await,
            409,
            "ACCOUNT_EXISTS",
        );
    }
    // ...and the password of the existing alice is still hers.
    assert_eq!(
        send(app.caller("alice", ALICE_PASSWORD).get(ACCOUNTS))
            .await
            .0,
        StatusCode::OK
    );

    for raw in ["{\"name\": \"bob\"", "nonsense"] {
        let request = app
            .admin()
            .request(reqwest::Method::POST, ACCOUNTS)
            .header("content-type", "application/json")
            .body(raw);
        assert_error(&send(request).await, 400, "INVALID_JSON");
    }
    let form = app
        .admin()
        .request(reqwest::Method::POST, ACCOUNTS)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=bob");
    assert_error(&send(form).await, 415, "UNSUPPORTED_MEDIA_TYPE");

    let patches = [
        (json!({"fullName": null}), "fullName"),
        (json!({"fullName": "x".repeat(201)}), "fullName"),
        (json!({"password": "short"}), "password"),
        (json!({"isAdmin": 1}), "isAdmin"),
        (json!({"name": "alicia"}), "name"),
        (json!({"isOrg": true}), "isOrg"),
        (json!([]), "body"),
    ];
    for (body, field) in patches {
        let response = send(app.admin().patch(&account("alice"), &body)).await;
        let error = assert_error(&response, 400, "INVALID_PARAMETERS");
        assert_eq!(error["detail"]["field"], field, "{body}: {error}");
        assert_eq!(
            all_accounts(&app).await,
            before,
            "{body} changed the accounts"
        );
    }
    create_org(&app, "acme").await;
    let before = all_accounts(&app).await;
    for (body, field) in [
        (json!({"password": "long-enough-pw"}), "password"),
        (json!({"isAdmin": true}), "isAdmin"),
    ] {
        let error = assert_error(
            &send(app.admin().patch(&account("acme"), &body)).await,
            400,
            "INVALID_PARAMETERS",
        );
        assert_eq!(error["detail"]["field"], field, "{body}: {error}");
    }
    assert_eq!(all_accounts(&app).await, before);
    app.stop().await;
}

#[tokio::test]
async fn only_admins_create_and_delete_accounts() {
    let app = TestApp::spawn().await;
    create_user(&app, "alice", ALICE_PASSWORD).await;
    create_user(&app, "bob", BOB_PASSWORD).await;
    let before = all_accounts(&app).await;
    let alice = app.caller("alice", ALICE_PASSWORD);
    assert_error(
        &send(alice.post(
            ACCOUNTS,
            &json!({"name": "mallory", "password": "mallory-password"}),
        ))
        .await,
        403,
        "NOT_AUTHORIZED",
    );
    assert_error(
        &send(alice.delete(&account("bob"))).await,
        403,
        "NOT_AUTHORIZED",
    );
    assert_error(
        &send(alice.delete(&account("alice"))).await,
        403,
        "NOT_AUTHORIZED",
    );
    for request in [
        app.http.get(app.url(ACCOUNTS)),
        app.http.get(app.url(&account("alice"))),
        app.http.post(app.url(ACCOUNTS)).json(&json!({"name": "x"})),
        app.http.delete(app.url(&account("bob"))),
        app.http
            .get(app.url(ACCOUNTS))
            .basic_auth("alice", Some("wrong password")),
    ] {
        assert_error(&send(request).await, 401, "NOT_AUTHENTICATED");
    }
    assert_eq!(all_accounts(&app).await, before);
    app.stop().await;
}

#[tokio::test]
async fn users_change_only_their_own_name_and_password() {
    let app = TestApp::spawn().await;
    create_user(&app, "alice", ALICE_PASSWORD).await;
    create_user(&app, "bob", BOB_PASSWORD).await;
    let alice = app.caller("alice", ALICE_PASSWORD);

    let (status, body) = send(alice.patch(&account("alice"), &json!({"fullName": "Alice"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fullName"], "Alice");
    for body in [
        json!({"isAdmin": true}),
        json!({"isActive": false}),
        json!({"fullName": "Boss", "isAdmin": true}),
    ] {
        assert_error(
            &send(alice.patch(&account("alice"), &body)).await,
            403,
            "NOT_AUTHORIZED",
        );
    }
    assert_error(
        &send(alice.patch(&account("bob"), &json!({"fullName": "Bobby"}))).await,
        403,
        "NOT_AUTHORIZED",
    );
    let (_, bob) = send(alice.get(&account("bob"))).await;
    assert_eq!(bob["fullName"], "");
    let (_, me) = send(alice.get(&account("alice"))).await;
    assert_eq!(
        (me["isAdmin"].clone(), me["isActive"].clone()),
        (json!(false), json!(true))
    );

    // Changing one's own password takes the current one; a refusal keeps it.
    let new_password = "through-the-looking-glass";
    for (body, field) in [
        (json!({"password": new_password}), "oldPassword"),
        (
            json!({"password": new_password, "oldPassword": "not-my-password"}),
            "oldPassword",
        ),
        (json!({"oldPassword": ALICE_PASSWORD}), "oldPassword"),
        (
            json!({"password": "short", "oldPassword": ALICE_PASSWORD}),
            "password",
        ),
        (
            json!({"password": new_password, "oldPassword": null}),
            "oldPassword",
        ),
    ] {
        let error = assert_error(
            &send(alice.patch(&account("alice"), &body)).await,
            400,
            "INVALID_PARAMETERS",
        );
        assert_eq!(error["detail"]["field"], field, "{body}: {error}");
        assert_eq!(send(alice.get(ACCOUNTS)).await.0, StatusCode::OK, "{body}");
    }
    let (status, body) = send(alice.patch(
        &account("alice"),
        &json!({"password": new_password, "oldPassword": ALICE_PASSWORD}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(&send(alice.get(ACCOUNTS)).await, 401, "NOT_AUTHENTICATED");
    let alice = app.caller("alice", new_password);
    assert_eq!(send(alice.get(ACCOUNTS)).await.0, StatusCode::OK);

    // Admins change the rest; a deactivated user cannot log in, and a
    // promoted one can do what admins do.
    let (status, body) = send(
        app.admin()
            .patch(&account("bob"), &json!({"isActive": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        &send(app.caller("bob", BOB_PASSWORD).get(ACCOUNTS)).await,
        401,
        "NOT_AUTHENTICATED",
    );
    send(
        app.admin()
            .patch(&account("bob"), &json!({"isActive": true})),
    )
    .await;
    assert_eq!(
        send(app.caller("bob", BOB_PASSWORD).get(ACCOUNTS)).await.0,
        StatusCode::OK
    );
    let (status, _) = send(
        app.admin()
            .patch(&account("alice"), &json!({"isAdmin": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(alice.post(
        ACCOUNTS,
        &json!({"name": "carol", "password": CAROL_PASSWORD}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) =
        send(alice.patch(&account("bob"), &json!({"password": "bob-new-password"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn the_last_active_admin_cannot_go() {
    let app = TestApp::spawn().await;
    let admin = account(ADMIN);
    let error = assert_error(
        &send(app.admin().delete(&admin)).await,
        400,
        "INVALID_PARAMETERS",
    );
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("last active admin"),
        "{error}"
    );
    // Nobody demotes or deactivates themselves, admins included.
    for body in [json!({"isAdmin": false}), json!({"isActive": false})] {
        assert_error(
            &send(app.admin().patch(&admin, &body)).await,
            403,
            "NOT_AUTHORIZED",
        );
    }
    // An admin may change their own name and password, though.
    let (status, body) = send(app.admin().patch(
        &admin,
        &json!({"fullName": "Root", "password": ADMIN_PASSWORD, "oldPassword": ADMIN_PASSWORD}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, me) = send(app.admin().get(&admin)).await;
    assert_eq!(
        (me["isAdmin"].clone(), me["isActive"].clone()),
        (json!(true), json!(true))
    );

    // An inactive admin does not count.
    let (status, _) = send(app.admin().post(
        ACCOUNTS,
        &json!({"name": "root2", "password": "root2-password", "isAdmin": true, "isActive": false}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_error(
        &send(app.admin().delete(&admin)).await,
        400,
        "INVALID_PARAMETERS",
    );
    // Once another admin is active, that one can demote or remove the
    // first; nobody deletes their own account.
    send(
        app.admin()
            .patch(&account("root2"), &json!({"isActive": true})),
    )
    .await;
    assert_error(
        &send(app.admin().delete(&admin)).await,
        403,
        "NOT_AUTHORIZED",
    );
    let root2 = app.caller("root2", "root2-password");
    let (status, body) = send(root2.patch(&admin, &json!({"isAdmin": false}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let root2 = app.caller("root2", "root2-password");
    assert_error(
        &send(root2.delete(&account("root2"))).await,
        400,
        "INVALID_PARAMETERS",
    );
    let (status, _) = send(root2.delete(&admin)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &send(app.admin().get(ACCOUNTS)).await,
        401,
        "NOT_AUTHENTICATED",
    );
    app.stop().await;
}

#[tokio::test]
async fn two_admins_removing_each_other_leave_one() {
    let app = TestApp::spawn().await;
    let (status, _) = send(app.admin().post(
        ACCOUNTS,
        &json!({"name": "root2", "password": "root2-password", "isAdmin": true}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let root2 = app.caller("root2", "root2-password");
    let admin = app.admin();
    let (first, second) = tokio::join!(
        send(admin.delete(&account("root2"))),
        send(root2.delete(&account(ADMIN))),
    );
    let mut statuses = [first.0.as_u16(), second.0.as_u16()];
    statuses.sort();
    // One delete wins; the other is refused (or, if the winner removed the
    // caller first, is no longer authenticated).
    assert!(
        statuses == [204, 400] || statuses == [204, 401],
        "{first:?} {second:?}"
    );
    let (status, list) = send(
        app.caller("root2", "root2-password")
            .get(&format!("{ACCOUNTS}?filter=admins")),
    )
    .await;
    let survivors = if status == StatusCode::OK {
        names(&list, "accounts")
    } else {
        names(
            &send(app.admin().get(&format!("{ACCOUNTS}?filter=admins")))
                .await
                .1,
            "accounts",
        )
    };
    assert_eq!(survivors.len(), 1, "{survivors:?}");
    app.stop().await;
}

#[tokio::test]
async fn org_members_are_managed_by_admins_and_org_admins() {
    let app = TestApp::spawn().await;
    create_org(&app, "acme").await;
    create_user(&app, "alice", ALICE_PASSWORD).await;
    create_user(&app, "bob", BOB_PASSWORD).await;
    create_user(&app, "carol", CAROL_PASSWORD).await;
    let members = "/enzi/v0/accounts/acme/members";
    let member = |name: &str| format!("{members}/{name}");

    let (status, body) = send(app.admin().put(&member("alice"), &json!({"isAdmin": true}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["isAdmin"], true);
    assert_eq!(body["member"]["name"], "alice");
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["isAdmin", "member"]
    );

    // Alice, an org admin, adds bob: without a body he is a plain member.
    let alice = app.caller("alice", ALICE_PASSWORD);
    let response = alice
        .request(reqwest::Method::PUT, &member("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["isAdmin"], false);
    // PUT again with `{}` keeps his role; isAdmin changes it.
    assert_eq!(
        send(alice.put(&member("bob"), &json!({}))).await.1["isAdmin"],
        false
    );
    assert_eq!(
        send(alice.put(&member("bob"), &json!({"isAdmin": true})))
            .await
            .1["isAdmin"],
        true
    );
    assert_eq!(
        send(alice.put(&member("bob"), &json!({}))).await.1["isAdmin"],
        true
    );
    send(alice.put(&member("bob"), &json!({"isAdmin": false}))).await;

    // Members see the list; bob, a plain member, cannot change it.
    let bob = app.caller("bob", BOB_PASSWORD);
    let (status, list) = send(bob.get(members)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(names(&list, "members"), ["alice", "bob"]);
    assert_eq!(list["members"][0]["isAdmin"], true);
    assert_eq!(list["members"][1]["isAdmin"], false);
    assert_eq!(list["nextPageStart"], "");
    let (_, page) = send(bob.get(&format!("{members}?limit=1"))).await;
    assert_eq!(names(&page, "members"), ["alice"]);
    assert_eq!(page["nextPageStart"], "alice");
    let (_, page) = send(bob.get(&format!("{members}?limit=1&start=alice"))).await;
    assert_eq!(names(&page, "members"), ["bob"]);
    assert_eq!(page["nextPageStart"], "");
    for request in [
        bob.put(&member("carol"), &json!({})),
        bob.put(&member("bob"), &json!({"isAdmin": true})),
        bob.delete(&member("alice")),
    ] {
        assert_error(&send(request).await, 403, "NOT_AUTHORIZED");
    }
    // Carol, not a member, cannot even see them.
    let carol = app.caller("carol", CAROL_PASSWORD);
    assert_error(&send(carol.get(members)).await, 403, "NOT_AUTHORIZED");
    assert_error(
        &send(carol.put(&member("carol"), &json!({}))).await,
        403,
        "NOT_AUTHORIZED",
    );

    let before = send(app.admin().get(members)).await.1;
    let errors = [
        (
            app.admin()
                .put(&member("alice"), &json!({"isAdmin": "yes"})),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            app.admin().put(&member("alice"), &json!({"isAdmin": null})),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            app.admin()
                .put(&member("alice"), &json!({"isPublic": true})),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            app.admin().put(&member("acme"), &json!({})),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            app.admin().put(&member("nobody"), &json!({})),
            404,
            "NO_SUCH_ACCOUNT",
        ),
        (
            app.admin()
                .put("/enzi/v0/accounts/nope/members/alice", &json!({})),
            404,
            "NO_SUCH_ACCOUNT",
        ),
        // A user is not an organization.
        (
            app.admin()
                .put("/enzi/v0/accounts/bob/members/alice", &json!({})),
            404,
            "NO_SUCH_ACCOUNT",
        ),
        (
            app.admin().get("/enzi/v0/accounts/bob/members"),
            404,
            "NO_SUCH_ACCOUNT",
        ),
        (
            app.admin().get(&format!("{members}?limit=0")),
            400,
            "INVALID_PARAMETERS",
        ),
    ];
    for (request, status, code) in errors {
        assert_error(&send(request).await, status, code);
    }
    assert_eq!(send(app.admin().get(members)).await.1, before);

    // Removing bob takes him off the org's teams too; removing a
    // non-member does nothing.
    let (status, _) = send(
        app.admin()
            .post("/enzi/v0/accounts/acme/teams", &json!({"name": "devs"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    send(
        app.admin()
            .put("/enzi/v0/accounts/acme/teams/devs/members/bob", &json!({})),
    )
    .await;
    let (status, _) = send(alice.delete(&member("bob"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        names(&send(alice.get(members)).await.1, "members"),
        ["alice"]
    );
    let (_, team_members) = send(alice.get("/enzi/v0/accounts/acme/teams/devs/members")).await;
    assert_eq!(names(&team_members, "members"), Vec::<String>::new());
    assert_error(&send(bob.get(members)).await, 403, "NOT_AUTHORIZED");
    let (status, _) = send(alice.delete(&member("carol"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &send(alice.delete(&member("nobody"))).await,
        404,
        "NO_SUCH_ACCOUNT",
    );
    app.stop().await;
}

#[tokio::test]
async fn teams_and_their_members() {
    let app = TestApp::spawn().await;
    let org = create_org(&app, "acme").await;
    create_org(&app, "other").await;
    create_user(&app, "alice", ALICE_PASSWORD).await;
    create_user(&app, "bob", BOB_PASSWORD).await;
    create_user(&app, "carol", CAROL_PASSWORD).await;
    send(app.admin().put(
        "/enzi/v0/accounts/acme/members/alice",
        &json!({"isAdmin": true}),
    ))
    .await;
    let teams = "/enzi/v0/accounts/acme/teams";
    let team = |name: &str| format!("{teams}/{name}");
    let alice = app.caller("alice", ALICE_PASSWORD);

    let (status, devs) = send(alice.post(
        teams,
        &json!({"name": "devs", "description": "The developers"}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{devs}");
    assert!(uuid::Uuid::parse_str(devs["id"].as_str().unwrap()).is_ok());
    assert_eq!(devs["orgID"], org["id"]);
    let mut expected = devs.clone();
    expected.as_object_mut().unwrap().remove("id");
    expected.as_object_mut().unwrap().remove("orgID");
    assert_eq!(
        expected,
        json!({"name": "devs", "description": "The developers", "membersCount": 0})
    );
    let (status, ops) = send(app.admin().post(teams, &json!({"name": "ops"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{ops}");
    assert_eq!(ops["description"], "");
    // Team names are per org.
    let (status, _) = send(
        app.admin()
            .post("/enzi/v0/accounts/other/teams", &json!({"name": "devs"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    assert_eq!(send(alice.get(&team("devs"))).await.1, devs);
    let (_, list) = send(alice.get(teams)).await;
    assert_eq!(names(&list, "teams"), ["devs", "ops"]);
    assert_eq!(list["nextPageStart"], "");
    let (_, page) = send(alice.get(&format!("{teams}?limit=1"))).await;
    assert_eq!(
        (names(&page, "teams"), page["nextPageStart"].clone()),
        (vec!["devs".to_owned()], json!("devs"))
    );

    // Members: adding one to a team makes them an org member.
    let (status, added) =
        send(alice.put(&format!("{}/members/bob", team("devs")), &json!({}))).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!(added["member"]["name"], "bob");
    assert_eq!(added.as_object().unwrap().len(), 1, "{added}");
    let response = alice
        .request(
            reqwest::Method::PUT,
            &format!("{}/members/carol", team("devs")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "no body is fine too");
    send(alice.put(&format!("{}/members/carol", team("devs")), &json!({}))).await;
    let (_, org_members) = send(alice.get("/enzi/v0/accounts/acme/members")).await;
    assert_eq!(names(&org_members, "members"), ["alice", "bob", "carol"]);
    assert_eq!(org_members["members"][1]["isAdmin"], false);
    let (_, team_members) = send(alice.get(&format!("{}/members", team("devs")))).await;
    assert_eq!(names(&team_members, "members"), ["bob", "carol"]);
    assert_eq!(send(alice.get(&team("devs"))).await.1["membersCount"], 2);
    let (_, page) = send(alice.get(&format!("{}/members?limit=1&start=bob", team("devs")))).await;
    assert_eq!(names(&page, "members"), ["carol"]);

    // Plain members see teams but do not manage them.
    let bob = app.caller("bob", BOB_PASSWORD);
    assert_eq!(send(bob.get(&team("devs"))).await.0, StatusCode::OK);
    assert_eq!(send(bob.get(teams)).await.0, StatusCode::OK);
    for request in [
        bob.post(teams, &json!({"name": "bobs"})),
        bob.patch(&team("devs"), &json!({"description": "mine"})),
        bob.delete(&team("ops")),
        bob.put(&format!("{}/members/bob", team("ops")), &json!({})),
        bob.delete(&format!("{}/members/carol", team("devs"))),
    ] {
        assert_error(&send(request).await, 403, "NOT_AUTHORIZED");
    }
    // Outsiders see nothing of the org.
    let (status, _) = send(app.admin().post(
        ACCOUNTS,
        &json!({"name": "dave", "password": "dave-password"}),
    ))
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let dave = app.caller("dave", "dave-password");
    for path in [
        teams.to_owned(),
        team("devs"),
        format!("{}/members", team("devs")),
    ] {
        assert_error(&send(dave.get(&path)).await, 403, "NOT_AUTHORIZED");
    }

    // Changing a team.
    let (status, renamed) = send(alice.patch(
        &team("ops"),
        &json!({"name": "operations", "description": "Keeps it running"}),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["id"], ops["id"]);
    assert_eq!(renamed["name"], "operations");
    assert_eq!(renamed["description"], "Keeps it running");
    assert_error(&send(alice.get(&team("ops"))).await, 404, "NO_SUCH_TEAM");
    let (status, kept) = send(alice.patch(&team("operations"), &json!({}))).await;
    assert_eq!((status, kept), (StatusCode::OK, renamed.clone()));

    // Refusals change nothing.
    let before = send(alice.get(teams)).await.1;
    let errors = [
        (
            alice.post(teams, &json!({"name": "devs"})),
            409,
            "TEAM_EXISTS",
        ),
        (
            alice.patch(&team("operations"), &json!({"name": "devs"})),
            409,
            "TEAM_EXISTS",
        ),
        (alice.post(teams, &json!({})), 400, "INVALID_PARAMETERS"),
        (
            alice.post(teams, &json!({"name": "Dev Team"})),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            alice.post(
                teams,
                &json!({"name": "x", "description": "d".repeat(1001)}),
            ),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            alice.post(teams, &json!({"name": "x", "members": []})),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            alice.patch(&team("devs"), &json!({"name": ""})),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            alice.patch(&team("devs"), &json!({"description": null})),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            alice.put(
                &format!("{}/members/bob", team("devs")),
                &json!({"isAdmin": true}),
            ),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            alice.put(&format!("{}/members/other", team("devs")), &json!({})),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            alice.put(&format!("{}/members/nobody", team("devs")), &json!({})),
            404,
            "NO_SUCH_ACCOUNT",
        ),
        (
            alice.put(&format!("{}/members/bob", team("nope")), &json!({})),
            404,
            "NO_SUCH_TEAM",
        ),
        (alice.get(&team("nope")), 404, "NO_SUCH_TEAM"),
        (alice.patch(&team("nope"), &json!({})), 404, "NO_SUCH_TEAM"),
        (
            alice.get(&format!("{}/members", team("nope"))),
            404,
            "NO_SUCH_TEAM",
        ),
        (
            alice.get("/enzi/v0/accounts/alice/teams"),
            404,
            "NO_SUCH_ACCOUNT",
        ),
        (
            alice.post("/enzi/v0/accounts/nope/teams", &json!({"name": "x"})),
            404,
            "NO_SUCH_ACCOUNT",
        ),
    ];
    for (request, status, code) in errors {
        assert_error(&send(request).await, status, code);
    }
    assert_eq!(send(alice.get(teams)).await.1, before);
    assert_eq!(
        names(
            &send(alice.get(&format!("{}/members", team("devs"))))
                .await
                .1,
            "members"
        ),
        ["bob", "carol"]
    );

    // Leaving a team keeps the org membership; deleting a team keeps both
    // members in the org.
    let (status, _) = send(alice.delete(&format!("{}/members/carol", team("devs")))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send(alice.delete(&format!("{}/members/carol", team("devs")))).await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "removing a non-member does nothing"
    );
    assert_eq!(
        names(
            &send(alice.get(&format!("{}/members", team("devs"))))
                .await
                .1,
            "members"
        ),
        ["bob"]
    );
    let (status, _) = send(alice.delete(&team("devs"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(&send(alice.get(&team("devs"))).await, 404, "NO_SUCH_TEAM");
    assert_error(
        &send(alice.delete(&team("devs"))).await,
        404,
        "NO_SUCH_TEAM",
    );
    assert_eq!(
        names(
            &send(alice.get("/enzi/v0/accounts/acme/members")).await.1,
            "members"
        ),
        ["alice", "bob", "carol"]
    );
    assert_eq!(
        names(&send(alice.get(teams)).await.1, "teams"),
        ["operations"]
    );
    assert_eq!(
        names(
            &send(app.admin().get("/enzi/v0/accounts/other/teams"))
                .await
                .1,
            "teams"
        ),
        ["devs"]
    );

    // Deleting the org takes its teams with it.
    send(app.admin().delete(&account("acme"))).await;
    assert_error(&send(app.admin().get(teams)).await, 404, "NO_SUCH_ACCOUNT");
    app.stop().await;
}

#[tokio::test]
async fn passwords_and_hashes_never_appear_in_responses() {
    let app = TestApp::spawn().await;
    let mut bodies = Vec::new();
    let mut record = |text: String| bodies.push(text);
    for request in [
        app.admin().post(
            ACCOUNTS,
            &json!({"name": "alice", "password": ALICE_PASSWORD}),
        ),
        app.admin().post(
            ACCOUNTS,
            &json!({"name": "alice", "password": ALICE_PASSWORD}),
        ),
        app.admin().post(
            ACCOUNTS,
            &json!({"name": "Alice", "password": ALICE_PASSWORD}),
        ),
        app.admin().post(
            ACCOUNTS,
            &json!({"name": "org", "isOrg": true, "password": ALICE_PASSWORD}),
        ),
        app.admin().post(
            ACCOUNTS,
            &json!({"name": "bob", "password": ALICE_PASSWORD, "extra": 1}),
        ),
        app.admin().get(ACCOUNTS),
        app.admin().get(&account("alice")),
        app.admin().get(&account(ADMIN)),
        app.admin()
            .patch(&account("alice"), &json!({"password": BOB_PASSWORD})),
        app.admin().patch(
            &account("alice"),
            &json!({"password": BOB_PASSWORD, "x": 1}),
        ),
        app.admin()
            .post(ACCOUNTS, &json!({"name": "acme", "isOrg": true})),
        app.admin()
            .put("/enzi/v0/accounts/acme/members/alice", &json!({})),
        app.admin().get("/enzi/v0/accounts/acme/members"),
        app.admin()
            .post("/enzi/v0/accounts/acme/teams", &json!({"name": "devs"})),
        app.admin().put(
            "/enzi/v0/accounts/acme/teams/devs/members/alice",
            &json!({}),
        ),
        app.admin().get("/enzi/v0/accounts/acme/teams/devs/members"),
        app.caller("alice", BOB_PASSWORD).get(&account("alice")),
        app.caller("alice", BOB_PASSWORD).patch(
            &account("alice"),
            &json!({"password": CAROL_PASSWORD, "oldPassword": ALICE_PASSWORD}),
        ),
    ] {
        record(request.send().await.unwrap().text().await.unwrap());
    }
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM accounts WHERE name = 'alice'")
            .fetch_one(&mut app.db.connect().await)
            .await
            .unwrap();
    assert!(hash.starts_with("$argon2id$"), "stored as argon2id");
    for body in &bodies {
        for secret in [
            ALICE_PASSWORD,
            BOB_PASSWORD,
            CAROL_PASSWORD,
            ADMIN_PASSWORD,
            "$argon2",
            hash.as_str(),
        ] {
            assert!(!body.contains(secret), "{secret:?} leaked: {body}");
        }
        assert!(
            !body.to_lowercase().contains("password\":"),
            "a password field: {body}"
        );
    }
    app.stop().await;
}
