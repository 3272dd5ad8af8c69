//! DTR's repositories API (`/api/v0/repositories`) and team access, over
//! HTTP on a fresh database per test, and the access rules behind them.

mod common;

use common::{TestApp, assert_error, send};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ACCOUNTS: &str = "/enzi/v0/accounts";
const ALICE_PASSWORD: &str = "alice-wonderland-2024";
const BOB_PASSWORD: &str = "bob-the-builder-2024";
const CAROL_PASSWORD: &str = "carol-singer-2024";
const DAVE_PASSWORD: &str = "dave-diver-2024";

fn repos(namespace: &str) -> String {
    format!("/api/v0/repositories/{namespace}")
}

fn repo(namespace: &str, name: &str) -> String {
    format!("/api/v0/repositories/{namespace}/{name}")
}

fn team_access(namespace: &str, name: &str) -> String {
    format!("{}/teamAccess", repo(namespace, name))
}

fn grant(namespace: &str, name: &str, team: &str) -> String {
    format!("{}/teamAccess/{team}", repo(namespace, name))
}

async fn ok(request: reqwest::RequestBuilder, expected: StatusCode) -> Value {
    let (status, body) = send(request).await;
    assert_eq!(status, expected, "{body}");
    body
}

/// An org `acme` with admin alice; bob in team `readers`, carol in team
/// `writers`, dave outside; and bob's own user.
async fn fixture(app: &TestApp) {
    let admin = app.admin();
    for (name, password) in [
        ("alice", ALICE_PASSWORD),
        ("bob", BOB_PASSWORD),
        ("carol", CAROL_PASSWORD),
        ("dave", DAVE_PASSWORD),
    ] {
        ok(
            admin.post(ACCOUNTS, &json!({"name": name, "password": password})),
            StatusCode::CREATED,
        )
        .await;
    }
    ok(
        admin.post(ACCOUNTS, &json!({"name": "acme", "isOrg": true})),
        StatusCode::CREATED,
    )
    .await;
    ok(
        admin.put(
            "/enzi/v0/accounts/acme/members/alice",
            &json!({"isAdmin": true}),
        ),
        StatusCode::OK,
    )
    .await;
    for (team, member) in [("readers", "bob"), ("writers", "carol")] {
        ok(
            admin.post("/enzi/v0/accounts/acme/teams", &json!({"name": team})),
            StatusCode::CREATED,
        )
        .await;
        ok(
            admin.put(
                &format!("/enzi/v0/accounts/acme/teams/{team}/members/{member}"),
                &json!({}),
            ),
            StatusCode::OK,
        )
        .await;
    }
}

fn without_id(mut repository: Value) -> Value {
    let id = repository.as_object_mut().unwrap().remove("id").unwrap();
    assert!(uuid::Uuid::parse_str(id.as_str().unwrap()).is_ok(), "{id}");
    repository
}

fn names(list: &Value) -> Vec<&str> {
    list["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn repositories_are_created_shown_changed_and_deleted() {
    let app = TestApp::spawn().await;
    fixture(&app).await;
    let alice = app.caller("alice", ALICE_PASSWORD);
    let created = ok(
        alice.post(
            &repos("acme"),
            &json!({"name": "webapp", "shortDescription": "The web front end",
                    "longDescription": "# Webapp\nBuilt nightly.", "visibility": "public",
                    "scanOnPush": true, "immutableTags": true, "enableManifestLists": true}),
        ),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        without_id(created.clone()),
        json!({"namespace": "acme", "namespaceType": "organization", "name": "webapp",
               "shortDescription": "The web front end", "longDescription": "# Webapp\nBuilt nightly.",
               "visibility": "public", "scanOnPush": true, "immutableTags": true,
               "enableManifestLists": true})
    );
    // Everything left out has DTR's defaults (private, no scanning, mutable tags).
    let bob = app.caller("bob", BOB_PASSWORD);
    let own = ok(
        bob.post(&repos("bob"), &json!({"name": "tools"})),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        without_id(own),
        json!({"namespace": "bob", "namespaceType": "user", "name": "tools",
               "shortDescription": "", "longDescription": "", "visibility": "private",
               "scanOnPush": false, "immutableTags": false, "enableManifestLists": true})
    );

    assert_eq!(
        ok(alice.get(&repo("acme", "webapp")), StatusCode::OK).await,
        created
    );
    ok(
        alice.post(&repos("acme"), &json!({"name": "api"})),
        StatusCode::CREATED,
    )
    .await;
    let list = ok(alice.get(&repos("acme")), StatusCode::OK).await;
    assert_eq!(names(&list), ["api", "webapp"]);
    assert_eq!(list.as_object().unwrap().len(), 1, "{list}");

    // Each field can be changed on its own; the rest stay.
    let mut expected = created.clone();
    for (field, value) in [
        ("shortDescription", json!("Front end")),
        ("longDescription", json!("")),
        ("visibility", json!("private")),
        ("scanOnPush", json!(false)),
        ("immutableTags", json!(false)),
    ] {
        let changed = ok(
            alice.patch(&repo("acme", "webapp"), &json!({field: value})),
            StatusCode::OK,
        )
        .await;
        expected[field] = value;
        assert_eq!(changed, expected, "{field}");
        assert_eq!(
            ok(alice.get(&repo("acme", "webapp")), StatusCode::OK).await,
            expected
        );
    }
    let changed = ok(
        alice.patch(
            &repo("acme", "webapp"),
            &json!({"visibility": "public", "scanOnPush": true, "enableManifestLists": true}),
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (changed["visibility"].clone(), changed["scanOnPush"].clone()),
        (json!("public"), json!(true))
    );

    let response = alice.delete(&repo("acme", "webapp")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for request in [
        alice.get(&repo("acme", "webapp")),
        alice.delete(&repo("acme", "webapp")),
        alice.patch(&repo("acme", "webapp"), &json!({})),
        alice.get(&team_access("acme", "webapp")),
    ] {
        assert_error(&send(request).await, 404, "NO_SUCH_REPOSITORY");
    }
    assert_eq!(
        names(&ok(alice.get(&repos("acme")), StatusCode::OK).await),
        ["api"]
    );
    // The name is free again.
    ok(
        alice.post(&repos("acme"), &json!({"name": "webapp"})),
        StatusCode::CREATED,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn refused_repositories_change_nothing() {
    let app = TestApp::spawn().await;
    fixture(&app).await;
    let admin = app.admin();
    let stored = ok(
        admin.post(
            &repos("acme"),
            &json!({"name": "webapp", "shortDescription": "web"}),
        ),
        StatusCode::CREATED,
    )
    .await;
    let listing = || async { ok(admin.get(&repos("acme")), StatusCode::OK).await };
    let before = listing().await;

    let long = "a".repeat(256);
    let mut cases = vec![
        (json!({}), "name"),
        (json!({"name": null}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"name": long}), "name"),
    ];
    for bad in [
        "",
        "a",
        "Webapp",
        "web app",
        "web/app",
        "-web",
        "web-",
        "web.",
        "web..app",
        "web___app",
        "web._app",
        "wéb",
    ] {
        cases.push((json!({"name": bad}), "name"));
    }
    cases.extend([
        (
            json!({"name": "ok-name", "visibility": "internal"}),
            "visibility",
        ),
        (json!({"name": "ok-name", "visibility": null}), "visibility"),
        (
            json!({"name": "ok-name", "scanOnPush": "yes"}),
            "scanOnPush",
        ),
        (
            json!({"name": "ok-name", "immutableTags": 1}),
            "immutableTags",
        ),
        (
            json!({"name": "ok-name", "shortDescription": "s".repeat(141)}),
            "shortDescription",
        ),
        (
            json!({"name": "ok-name", "shortDescription": "nul\u{0}"}),
            "shortDescription",
        ),
        (
            json!({"name": "ok-name", "longDescription": "l".repeat(100_001)}),
            "longDescription",
        ),
        (
            json!({"name": "ok-name", "enableManifestLists": false}),
            "enableManifestLists",
        ),
        (json!({"name": "ok-name", "pulls": 0}), "pulls"),
        (json!({"name": "ok-name", "namespace": "bob"}), "namespace"),
        (json!(["ok-name"]), "body"),
    ]);
    for (body, field) in cases {
        let response = send(admin.post(&repos("acme"), &body)).await;
        if response.0 == StatusCode::PAYLOAD_TOO_LARGE {
            continue; // the test server's body limit is smaller than the field's
        }
        let error = assert_error(&response, 400, "INVALID_PARAMETERS");
        assert_eq!(error["detail"]["field"], field, "{body}: {error}");
        assert_eq!(listing().await, before, "{body} changed the repositories");
    }
    // The longest names and descriptions are fine.
    ok(
        admin.post(
            &repos("bob"),
            &json!({"name": "a".repeat(255), "shortDescription": "s".repeat(140)}),
        ),
        StatusCode::CREATED,
    )
    .await;

    assert_error(
        &send(admin.post(&repos("acme"), &json!({"name": "webapp"}))).await,
        409,
        "REPOSITORY_EXISTS",
    );
    assert_error(
        &send(admin.post(&repos("nobody"), &json!({"name": "webapp"}))).await,
        404,
        "NO_SUCH_ACCOUNT",
    );
    assert_error(
        &send(admin.get(&repos("nobody"))).await,
        404,
        "NO_SUCH_ACCOUNT",
    );
    for path in [
        repo("acme", "nope"),
        repo("nobody", "webapp"),
        repo("acme", "Web%20App"),
    ] {
        assert_error(&send(admin.get(&path)).await, 404, "NO_SUCH_REPOSITORY");
    }

    let patches = [
        (json!({"visibility": "secret"}), "visibility"),
        (json!({"shortDescription": null}), "shortDescription"),
        (
            json!({"shortDescription": "s".repeat(141)}),
            "shortDescription",
        ),
        (json!({"longDescription": 7}), "longDescription"),
        (json!({"enableManifestLists": false}), "enableManifestLists"),
        (json!({"name": "renamed"}), "name"),
        (json!({"id": stored["id"]}), "id"),
        (json!("public"), "body"),
    ];
    for (body, field) in patches {
        let response = send(admin.patch(&repo("acme", "webapp"), &body)).await;
        let error = assert_error(&response, 400, "INVALID_PARAMETERS");
        assert_eq!(error["detail"]["field"], field, "{body}: {error}");
        assert_eq!(
            ok(admin.get(&repo("acme", "webapp")), StatusCode::OK).await,
            stored
        );
    }
    let raw = admin
        .request(reqwest::Method::PATCH, &repo("acme", "webapp"))
        .header("content-type", "application/json")
        .body("{\"visibility\":");
    assert_error(&send(raw).await, 400, "INVALID_JSON");
    assert_eq!(listing().await, before);
    app.stop().await;
}

#[tokio::test]
async fn who_may_create_repositories() {
    let app = TestApp::spawn().await;
    fixture(&app).await;
    let body = |name: &str| json!({"name": name});
    let allowed = [
        (app.caller("bob", BOB_PASSWORD), "bob"),
        (app.caller("alice", ALICE_PASSWORD), "acme"),
        (app.admin(), "acme"),
        (app.admin(), "dave"),
    ];
    for (i, (caller, namespace)) in allowed.iter().enumerate() {
        ok(
            caller.post(&repos(namespace), &body(&format!("repo{i}"))),
            StatusCode::CREATED,
        )
        .await;
    }
    let refused = [
        (app.caller("bob", BOB_PASSWORD), "dave"),
        (app.caller("bob", BOB_PASSWORD), "acme"),
        (app.caller("carol", CAROL_PASSWORD), "acme"),
        (app.caller("dave", DAVE_PASSWORD), "acme"),
        (app.caller("alice", ALICE_PASSWORD), "bob"),
    ];
    for (caller, namespace) in &refused {
        assert_error(
            &send(caller.post(&repos(namespace), &body("sneaky"))).await,
            403,
            "NOT_AUTHORIZED",
        );
    }
    let mut all: Vec<String> = Vec::new();
    for namespace in ["acme", "bob", "dave", "alice", "carol"] {
        let list = ok(app.admin().get(&repos(namespace)), StatusCode::OK).await;
        all.extend(names(&list).iter().map(|name| (*name).to_owned()));
    }
    all.sort();
    assert_eq!(all, ["repo0", "repo1", "repo2", "repo3"]);
    assert_error(
        &send(app.http.post(app.url(&repos("bob"))).json(&body("anon"))).await,
        401,
        "NOT_AUTHENTICATED",
    );
    app.stop().await;
}

#[tokio::test]
async fn access_follows_teams_ownership_and_visibility() {
    let app = TestApp::spawn().await;
    fixture(&app).await;
    let admin = app.admin();
    let alice = app.caller("alice", ALICE_PASSWORD);
    let bob = app.caller("bob", BOB_PASSWORD);
    let carol = app.caller("carol", CAROL_PASSWORD);
    let dave = app.caller("dave", DAVE_PASSWORD);
    for (name, visibility) in [("private-app", "private"), ("public-app", "public")] {
        ok(
            admin.post(
                &repos("acme"),
                &json!({"name": name, "visibility": visibility}),
            ),
            StatusCode::CREATED,
        )
        .await;
    }
    ok(
        alice.put(
            &grant("acme", "private-app", "readers"),
            &json!({"accessLevel": "read-only"}),
        ),
        StatusCode::OK,
    )
    .await;
    ok(
        alice.put(
            &grant("acme", "private-app", "writers"),
            &json!({"accessLevel": "admin"}),
        ),
        StatusCode::OK,
    )
    .await;

    // bob (read-only team) reads but cannot change or delete, nor see grants.
    let private = repo("acme", "private-app");
    let stored = ok(bob.get(&private), StatusCode::OK).await;
    assert_eq!(
        names(&ok(bob.get(&repos("acme")), StatusCode::OK).await),
        ["private-app", "public-app"]
    );
    for request in [
        bob.patch(&private, &json!({"shortDescription": "bob was here"})),
        bob.delete(&private),
        bob.get(&team_access("acme", "private-app")),
        bob.put(
            &grant("acme", "private-app", "readers"),
            &json!({"accessLevel": "admin"}),
        ),
        bob.delete(&grant("acme", "private-app", "readers")),
    ] {
        assert_error(&send(request).await, 403, "NOT_AUTHORIZED");
    }
    assert_eq!(ok(admin.get(&private), StatusCode::OK).await, stored);

    // dave, outside the org, cannot tell the private repository exists...
    for request in [
        dave.get(&private),
        dave.patch(&private, &json!({"visibility": "public"})),
        dave.delete(&private),
        dave.get(&team_access("acme", "private-app")),
        dave.put(
            &grant("acme", "private-app", "readers"),
            &json!({"accessLevel": "admin"}),
        ),
    ] {
        let error = assert_error(&send(request).await, 404, "NO_SUCH_REPOSITORY");
        assert_eq!(
            error["message"],
            send(dave.get(&repo("acme", "no-such-app"))).await.1["errors"][0]["message"]
                .as_str()
                .unwrap()
                .replace("no-such-app", "private-app"),
            "the same answer as for a repository that does not exist"
        );
    }
    // ...but reads the public one, without being able to change it.
    let public = repo("acme", "public-app");
    ok(dave.get(&public), StatusCode::OK).await;
    assert_eq!(
        names(&ok(dave.get(&repos("acme")), StatusCode::OK).await),
        ["public-app"]
    );
    assert_error(
        &send(dave.patch(&public, &json!({"visibility": "private"}))).await,
        403,
        "NOT_AUTHORIZED",
    );
    assert_error(&send(dave.delete(&public)).await, 403, "NOT_AUTHORIZED");

    // carol (admin team) manages the repository and its grants.
    ok(
        carol.patch(&private, &json!({"shortDescription": "carol's"})),
        StatusCode::OK,
    )
    .await;
    ok(
        carol.get(&team_access("acme", "private-app")),
        StatusCode::OK,
    )
    .await;
    ok(
        carol.put(
            &grant("acme", "private-app", "readers"),
            &json!({"accessLevel": "read-write"}),
        ),
        StatusCode::OK,
    )
    .await;
    // alice (org admin) manages every repository of the org, granted or not.
    ok(
        alice.patch(&public, &json!({"immutableTags": true})),
        StatusCode::OK,
    )
    .await;
    ok(
        alice.get(&team_access("acme", "public-app")),
        StatusCode::OK,
    )
    .await;

    // Making it public lets dave read it; revoking bob's team hides it from him.
    ok(
        alice.patch(&private, &json!({"visibility": "public"})),
        StatusCode::OK,
    )
    .await;
    ok(dave.get(&private), StatusCode::OK).await;
    ok(
        alice.patch(&private, &json!({"visibility": "private"})),
        StatusCode::OK,
    )
    .await;
    ok(
        alice.delete(&grant("acme", "private-app", "readers")),
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_error(&send(bob.get(&private)).await, 404, "NO_SUCH_REPOSITORY");
    assert_eq!(
        names(&ok(bob.get(&repos("acme")), StatusCode::OK).await),
        ["public-app"]
    );
    // Leaving the team (here: the org) ends carol's access too.
    ok(
        admin.delete("/enzi/v0/accounts/acme/members/carol"),
        StatusCode::NO_CONTENT,
    )
    .await;
    assert_error(&send(carol.get(&private)).await, 404, "NO_SUCH_REPOSITORY");

    // A user's own private repository: theirs and the admins' only.
    ok(
        bob.post(&repos("bob"), &json!({"name": "secret"})),
        StatusCode::CREATED,
    )
    .await;
    ok(
        bob.patch(&repo("bob", "secret"), &json!({"longDescription": "mine"})),
        StatusCode::OK,
    )
    .await;
    ok(admin.get(&repo("bob", "secret")), StatusCode::OK).await;
    assert_error(
        &send(alice.get(&repo("bob", "secret"))).await,
        404,
        "NO_SUCH_REPOSITORY",
    );
    assert_eq!(
        names(&ok(alice.get(&repos("bob")), StatusCode::OK).await),
        Vec::<&str>::new()
    );
    ok(bob.delete(&repo("bob", "secret")), StatusCode::NO_CONTENT).await;
    app.stop().await;
}

#[tokio::test]
async fn team_access_is_granted_listed_and_revoked() {
    let app = TestApp::spawn().await;
    fixture(&app).await;
    let alice = app.caller("alice", ALICE_PASSWORD);
    let admin = app.admin();
    let repository = ok(
        alice.post(&repos("acme"), &json!({"name": "webapp"})),
        StatusCode::CREATED,
    )
    .await;
    let empty = ok(alice.get(&team_access("acme", "webapp")), StatusCode::OK).await;
    assert_eq!(
        empty,
        json!({"teamAccessList": [], "repository": repository})
    );

    let readers = ok(
        alice.get("/enzi/v0/accounts/acme/teams/readers"),
        StatusCode::OK,
    )
    .await;
    let writers = ok(
        alice.get("/enzi/v0/accounts/acme/teams/writers"),
        StatusCode::OK,
    )
    .await;
    let granted = ok(
        alice.put(
            &grant("acme", "webapp", "readers"),
            &json!({"accessLevel": "read-only"}),
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        granted,
        json!({"accessLevel": "read-only", "team": readers, "repository": repository})
    );
    ok(
        alice.put(
            &grant("acme", "webapp", "writers"),
            &json!({"accessLevel": "read-write"}),
        ),
        StatusCode::OK,
    )
    .await;
    // A second PUT replaces the level.
    let upgraded = ok(
        alice.put(
            &grant("acme", "webapp", "readers"),
            &json!({"accessLevel": "admin"}),
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(upgraded["accessLevel"], "admin");
    let list = ok(alice.get(&team_access("acme", "webapp")), StatusCode::OK).await;
    assert_eq!(
        list,
        json!({"teamAccessList": [
                   {"accessLevel": "admin", "team": readers},
                   {"accessLevel": "read-write", "team": writers}],
               "repository": repository})
    );

    // Refusals change nothing.
    ok(
        admin.post(ACCOUNTS, &json!({"name": "other", "isOrg": true})),
        StatusCode::CREATED,
    )
    .await;
    ok(
        admin.post(
            "/enzi/v0/accounts/other/teams",
            &json!({"name": "outsiders"}),
        ),
        StatusCode::CREATED,
    )
    .await;
    ok(
        app.caller("bob", BOB_PASSWORD)
            .post(&repos("bob"), &json!({"name": "tools"})),
        StatusCode::CREATED,
    )
    .await;
    let errors = [
        (
            alice.put(
                &grant("acme", "webapp", "readers"),
                &json!({"accessLevel": "none"}),
            ),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            alice.put(
                &grant("acme", "webapp", "readers"),
                &json!({"accessLevel": "write"}),
            ),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            alice.put(
                &grant("acme", "webapp", "readers"),
                &json!({"accessLevel": null}),
            ),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            alice.put(&grant("acme", "webapp", "readers"), &json!({})),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            alice.put(
                &grant("acme", "webapp", "readers"),
                &json!({"accessLevel": "admin", "x": 1}),
            ),
            400,
            "INVALID_PARAMETERS",
        ),
        (
            alice.put(
                &grant("acme", "webapp", "nope"),
                &json!({"accessLevel": "admin"}),
            ),
            404,
            "NO_SUCH_TEAM",
        ),
        // A team of another org.
        (
            alice.put(
                &grant("acme", "webapp", "outsiders"),
                &json!({"accessLevel": "admin"}),
            ),
            404,
            "NO_SUCH_TEAM",
        ),
        (
            admin.put(
                &grant("acme", "webapp", "outsiders"),
                &json!({"accessLevel": "admin"}),
            ),
            404,
            "NO_SUCH_TEAM",
        ),
        (
            alice.delete(&grant("acme", "webapp", "nope")),
            404,
            "NO_SUCH_TEAM",
        ),
        (
            alice.put(
                &grant("acme", "nope", "readers"),
                &json!({"accessLevel": "admin"}),
            ),
            404,
            "NO_SUCH_REPOSITORY",
        ),
        // A user's namespace has no teams.
        (
            admin.put(
                &grant("bob", "tools", "readers"),
                &json!({"accessLevel": "admin"}),
            ),
            404,
            "NO_SUCH_TEAM",
        ),
        (
            admin.delete(&grant("bob", "tools", "readers")),
            404,
            "NO_SUCH_TEAM",
        ),
    ];
    for (request, status, code) in errors {
        let error = assert_error(&send(request).await, status, code);
        if status == 400 {
            assert!(error["detail"]["field"].is_string(), "{error}");
        }
    }
    assert_eq!(
        ok(alice.get(&team_access("acme", "webapp")), StatusCode::OK).await,
        list
    );
    let tools = ok(admin.get(&team_access("bob", "tools")), StatusCode::OK).await;
    assert_eq!(tools["teamAccessList"], json!([]));

    ok(
        alice.delete(&grant("acme", "webapp", "readers")),
        StatusCode::NO_CONTENT,
    )
    .await;
    ok(
        alice.delete(&grant("acme", "webapp", "readers")),
        StatusCode::NO_CONTENT,
    )
    .await;
    let list = ok(alice.get(&team_access("acme", "webapp")), StatusCode::OK).await;
    assert_eq!(
        list["teamAccessList"],
        json!([{"accessLevel": "read-write", "team": writers}])
    );
    // Deleting a team deletes its grants.
    ok(
        alice.delete("/enzi/v0/accounts/acme/teams/writers"),
        StatusCode::NO_CONTENT,
    )
    .await;
    let list = ok(alice.get(&team_access("acme", "webapp")), StatusCode::OK).await;
    assert_eq!(list["teamAccessList"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn find_reads_a_repository_for_the_distribution_api() {
    use msr::registry::repositories::{self, NamespaceType, Visibility};
    let app = TestApp::spawn().await;
    fixture(&app).await;
    let created = ok(
        app.admin().post(
            &repos("acme"),
            &json!({"name": "webapp", "visibility": "public", "immutableTags": true}),
        ),
        StatusCode::CREATED,
    )
    .await;
    let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
    let found = repositories::find(&pool, "acme", "webapp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id.to_string(), created["id"].as_str().unwrap());
    assert_eq!(
        (found.namespace.as_str(), found.name.as_str()),
        ("acme", "webapp")
    );
    assert_eq!(found.visibility, Visibility::Public);
    assert_eq!(found.namespace_type, NamespaceType::Organization);
    assert!(found.immutable_tags);
    assert!(!found.scan_on_push);
    for (namespace, name) in [
        ("acme", "nope"),
        ("nobody", "webapp"),
        ("acme", "Bad Name"),
        ("a\0", "b"),
    ] {
        assert!(
            repositories::find(&pool, namespace, name)
                .await
                .unwrap()
                .is_none()
        );
    }
    pool.close().await;
    app.stop().await;
}
