//! Contract tests of the video façade against the vendor's own OpenAPI document for Digital
//! Samba (`../shared/vendor/digitalsamba.openapi.yaml`, cut from the vendor's repository; see the
//! README beside it for its known defects).
//!
//! Every vendor operation rollcall serves is called on a real server, authenticated as the
//! document's security scheme says (HTTP bearer, the developer key), and each answer is checked
//! with the shared checker (`tests/it/support/contract.rs`): the status is one the vendor documents,
//! and the body has every property the schema requires, each present property of the schema's
//! type (recursively). The vendor's response schemas mark nothing required, so the test also
//! lists the properties rollcall serves that the schema does not name, and asserts that list is
//! exactly the documented decision. Wherever rollcall deliberately differs from the document
//! (`protocol/video.md`), the difference is asserted, never skipped.

use crate::support::contract::{assert_conforms, Doc};
use crate::support::video::*;
use crate::support::*;
use serde_json::{json, Value};

/// The vendor's document, or `None` (a `SKIPPED:` line for `test`) where it is not there.
fn vendor(test: &str) -> Option<Doc> {
    crate::support::contract::vendor_doc(test, "digitalsamba.openapi.yaml")
}

/// The vendor operations rollcall serves; each is exercised below.
const SERVED: [(&str, &str); 11] = [
    ("POST", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms/{room}"),
    ("PATCH", "/api/v1/rooms/{room}"),
    ("DELETE", "/api/v1/rooms/{room}"),
    ("GET", "/api/v1/rooms/{room}/live"),
    ("GET", "/api/v1/rooms/{room}/live/participants"),
    ("GET", "/api/v1/rooms/live"),
    ("GET", "/api/v1/rooms/live/participants"),
    ("POST", "/api/v1/rooms/{room}/phone-participants/joined"),
    ("POST", "/api/v1/rooms/{room}/phone-participants/left"),
];

/// Vendor operations rollcall does not serve (`protocol/video.md`: 404).
const NOT_SERVED: [(&str, &str); 6] = [
    ("GET", "/api/v1/webhooks"),
    ("POST", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks/{webhook}"),
    ("PATCH", "/api/v1/webhooks/{webhook}"),
    ("DELETE", "/api/v1/webhooks/{webhook}"),
    ("GET", "/api/v1/events"),
];

/// Decision (`protocol/video.md`, room object): `topic` is served on every room object, though
/// the vendor's single-room response schemas name it only in the list's items.
const ROOM_EXTRAS: [&str; 1] = ["$.topic"];

/// A call authenticated as the vendor's document says: `Authorization: Bearer <developer key>`.
async fn call(s: &TestServer, method: &str, path: &str, body: Option<Value>) -> Resp {
    let body = body.map(|b| b.to_string());
    send(s, method, path, Auth::BearerKey(KEY), body.as_deref()).await
}

/// Checks `r` against the vendor's documentation of `method template`: a documented status, and
/// a body that conforms to the documented JSON schema (or is empty when the vendor documents no
/// content). Returns the properties served that the schema does not name.
fn check(doc: &Doc, method: &str, template: &str, r: &Resp) -> Vec<String> {
    assert!(
        SERVED.contains(&(method, template)),
        "{method} {template} is not in SERVED"
    );
    let what = format!("{method} {template} → {}", r.status);
    let statuses = doc.statuses(method, template);
    assert!(
        statuses.contains(&r.status.to_string()),
        "{what}: the vendor documents {statuses:?}; body {}",
        r.text
    );
    match doc.json_schema(method, template, r.status) {
        Some(schema) => {
            assert!(!r.json.is_null(), "{what}: a JSON body, got {:?}", r.text);
            assert_conforms(doc, schema, &r.json, &what);
            doc.undocumented(schema, &r.json)
        }
        None => {
            assert_eq!(r.text, "", "{what}: the vendor documents no content");
            Vec::new()
        }
    }
}

/// Rooms: create (minimal and full), get by UUID and by `friendly_url`, list, update and delete
/// each answer a documented status with a body that conforms; the decisions that differ from the
/// document are asserted one by one.
#[tokio::test]
async fn room_routes_answer_as_the_vendor_documents() {
    let Some(doc) = vendor("room_routes_answer_as_the_vendor_documents") else {
        return;
    };
    let scheme = &doc.0["components"]["securitySchemes"]["default"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    let s = server().await;

    // Decision: privacy, roles and private_group_chat_roles are optional, though the vendor's
    // request schema requires them.
    let create_req = doc.request_schema("POST", "/api/v1/rooms").unwrap();
    assert_eq!(
        doc.violations(create_req, &json!({})),
        [
            "$.privacy: missing (required)",
            "$.roles: missing (required)",
            "$.private_group_chat_roles: missing (required)"
        ]
    );
    let minimal = call(&s, "POST", "/api/v1/rooms", Some(json!({}))).await;
    assert_eq!(
        check(&doc, "POST", "/api/v1/rooms", &minimal),
        Vec::<String>::new()
    );
    assert_eq!(minimal.json["privacy"], "public", "the default privacy");
    assert_eq!(minimal.json["friendly_url"].as_str().unwrap().len(), 32);
    // Decision: unset optional strings are omitted, never null (the vendor types them as plain
    // strings).
    for k in ["description", "topic", "external_id"] {
        assert!(minimal.json.get(k).is_none(), "{k} in {}", minimal.json);
    }

    let full = json!({"friendly_url": "contract-room", "description": "Contract check",
                      "privacy": "private", "max_participants": 10, "external_id": "EXT-9",
                      "default_role": "attendee", "roles": ["moderator", "attendee"],
                      "private_group_chat_roles": [], "toolbar_color": "#112233"});
    assert_conforms(&doc, create_req, &full, "the test's own create request");
    let mut body = full.clone();
    body["topic"] = json!("Contracts");
    let room = call(&s, "POST", "/api/v1/rooms", Some(body)).await;
    assert_eq!(check(&doc, "POST", "/api/v1/rooms", &room), ROOM_EXTRAS);
    let room = room.json;
    let id = room["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    // Decision: `default_role` is taken as the request's string but not served (the vendor's
    // response types it as an object); nor are room_url, roles or the presentation settings.
    for k in ["default_role", "room_url", "roles", "toolbar_color"] {
        assert!(room.get(k).is_none(), "{k} in {room}");
    }
    for key in [id.as_str(), "contract-room"] {
        let r = call(&s, "GET", &format!("/api/v1/rooms/{key}"), None).await;
        assert_eq!(check(&doc, "GET", "/api/v1/rooms/{room}", &r), ROOM_EXTRAS);
        assert_eq!(r.json, room);
    }

    for query in [
        "",
        "?limit=1&offset=0&order=asc",
        "?after=contract-room&order=asc",
    ] {
        let r = call(&s, "GET", &format!("/api/v1/rooms{query}"), None).await;
        let extras = check(&doc, "GET", "/api/v1/rooms", &r);
        // Decision: total_count is a string, as the vendor's schema for this route says.
        assert_eq!(r.json["total_count"], "2", "{query}");
        let n = r.json["data"].as_array().unwrap().len();
        let want_n = match query {
            "" => 2,
            "?limit=1&offset=0&order=asc" => 1,
            _ => 0,
        };
        assert_eq!(n, want_n, "{query}");
        assert!(extras.is_empty(), "{query}: {extras:?}");
    }

    let mut w = watcher(&s, &id).await;
    let patch_req = doc.request_schema("PATCH", "/api/v1/rooms/{room}").unwrap();
    let patch = json!({"topic": "New topic", "max_participants": 12, "external_id": null});
    // Decision: every PATCH field is optional (the vendor requires privacy and
    // private_group_chat_roles), and null clears an optional string.
    assert_eq!(
        doc.violations(patch_req, &patch),
        [
            "$.privacy: missing (required)",
            "$.private_group_chat_roles: missing (required)",
            "$.external_id: null, but the schema is not nullable"
        ]
    );
    let r = call(&s, "PATCH", "/api/v1/rooms/contract-room", Some(patch)).await;
    assert_eq!(
        check(&doc, "PATCH", "/api/v1/rooms/{room}", &r),
        ROOM_EXTRAS
    );
    assert_eq!(
        (&r.json["topic"], &r.json["max_participants"]),
        (&json!("New topic"), &json!(12))
    );
    assert!(r.json.get("external_id").is_none(), "cleared: {}", r.json);
    assert_eq!(w.expect("updated").await["attrs"]["topic"], "New topic");

    let r = call(&s, "DELETE", &format!("/api/v1/rooms/{id}"), None).await;
    assert_eq!(r.status, 204);
    assert!(check(&doc, "DELETE", "/api/v1/rooms/{room}", &r).is_empty());
    assert_eq!(w.expect("closed").await["reason"], "deleted");
    let gone = call(&s, "GET", &format!("/api/v1/rooms/{id}"), None).await;
    assert_eq!(gone.status, 404);
}

/// The four live listings conform, with nobody live (decision: 200 without `start_time` and
/// `session_duration`) and with a web participant (numeric `ud`) and two phone callers.
#[tokio::test]
async fn live_listings_answer_as_the_vendor_documents() {
    let Some(doc) = vendor("live_listings_answer_as_the_vendor_documents") else {
        return;
    };
    let s = server().await;
    let room = create(
        &s,
        json!({"friendly_url": "live-contract", "external_id": "R-1"}),
    )
    .await;
    let id = room["id"].as_str().unwrap().to_owned();
    let one = "/api/v1/rooms/{room}/live";
    let one_p = "/api/v1/rooms/{room}/live/participants";

    let r = call(&s, "GET", "/api/v1/rooms/live-contract/live", None).await;
    assert!(check(&doc, "GET", one, &r).is_empty());
    assert_eq!(
        r.json,
        json!({"id": id, "external_id": "R-1", "live_participants": 0})
    );
    let r = call(
        &s,
        "GET",
        "/api/v1/rooms/live-contract/live/participants",
        None,
    )
    .await;
    assert!(check(&doc, "GET", one_p, &r).is_empty());
    assert_eq!(r.json["live_participants"], json!([]));
    for (path, template) in [
        ("/api/v1/rooms/live", "/api/v1/rooms/live"),
        (
            "/api/v1/rooms/live/participants",
            "/api/v1/rooms/live/participants",
        ),
    ] {
        let r = call(&s, "GET", path, None).await;
        assert!(check(&doc, "GET", template, &r).is_empty());
        // The live lists' total_count is an integer, as in the vendor's schemas for them.
        assert_eq!(r.json, json!({"total_count": 0, "data": []}));
    }

    let token = room_token(
        KEY,
        json!({"td": TEAM, "rd": id, "ud": 42, "u": "Web User", "role": "moderator",
               "exp": now() + 600}),
    );
    let mut web = s.connect_token(&token).await;
    web.join(&format!("video:{id}")).await;
    let r = call(
        &s,
        "POST",
        "/api/v1/rooms/live-contract/phone-participants/joined",
        Some(
            json!([{"call_id": "c-1", "name": "Desk", "external_id": "crm-1"},
                             {"call_id": "c-2", "caller_number": "+4930123456", "muted": true}]),
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids(&web.expect("joined").await), ["c-1", "c-2"]);

    let r = call(&s, "GET", &format!("/api/v1/rooms/{id}/live"), None).await;
    assert!(check(&doc, "GET", one, &r).is_empty());
    assert_eq!(r.json["live_participants"], 3);
    assert!(r.json["session_duration"].is_u64() && r.json["start_time"].is_string());
    let r = call(
        &s,
        "GET",
        &format!("/api/v1/rooms/{id}/live/participants"),
        None,
    )
    .await;
    assert!(check(&doc, "GET", one_p, &r).is_empty());
    let p = &r.json["live_participants"];
    // A numeric `ud` is served as the string the vendor's schema types `id` as.
    assert_eq!(
        (&p[0]["id"], &p[0]["external_id"], &p[0]["role"]),
        (&json!("42"), &json!("42"), &json!("moderator"))
    );
    assert_eq!(
        (&p[1]["id"], &p[1]["external_id"], &p[1]["role"]),
        (&json!("c-1"), &json!("crm-1"), &json!("phone"))
    );
    assert_eq!(
        (&p[2]["name"], p[2].get("external_id")),
        (&json!("+4930123456"), None)
    );

    create(&s, json!({"friendly_url": "nobody-live"})).await;
    for (path, template, count) in [
        ("/api/v1/rooms/live?limit=1", "/api/v1/rooms/live", json!(3)),
        (
            "/api/v1/rooms/live/participants?order=asc",
            "/api/v1/rooms/live/participants",
            json!(3),
        ),
    ] {
        let r = call(&s, "GET", path, None).await;
        assert!(check(&doc, "GET", template, &r).is_empty());
        assert_eq!(
            r.json["total_count"], 1,
            "only rooms with someone live: {}",
            r.text
        );
        let live = &r.json["data"][0]["live_participants"];
        assert_eq!(
            live.as_array().map_or(live.clone(), |a| json!(a.len())),
            count
        );
    }
}

/// The vendor documents no response for the phone routes, no body for `joined` and `{ids}` for
/// `left`; the decisions (200 with an empty body; the middleware's bare arrays accepted too) are
/// asserted, and the room's sockets see each change.
#[tokio::test]
async fn phone_routes_follow_the_documented_decisions() {
    let Some(doc) = vendor("phone_routes_follow_the_documented_decisions") else {
        return;
    };
    let s = server().await;
    let room = create(&s, json!({"friendly_url": "phones"})).await;
    let mut w = watcher(&s, room["id"].as_str().unwrap()).await;
    let joined = "/api/v1/rooms/{room}/phone-participants/joined";
    let left = "/api/v1/rooms/{room}/phone-participants/left";
    for t in [joined, left] {
        assert!(
            doc.statuses("POST", t).is_empty(),
            "the vendor now documents {t}: check it"
        );
    }
    assert!(doc.request_schema("POST", joined).is_none());

    let r = call(
        &s,
        "POST",
        "/api/v1/rooms/phones/phone-participants/joined",
        Some(
            json!([{"call_id": "a", "name": "A"}, {"call_id": "b", "name": "B"},
                             {"call_id": "c", "caller_number": "+14155550100"}]),
        ),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    assert_eq!(ids(&w.expect("joined").await), ["a", "b", "c"]);

    let left_req = doc.request_schema("POST", left).unwrap();
    let vendor_form = json!({"ids": ["a"]});
    assert_conforms(&doc, left_req, &vendor_form, "the vendor's left body");
    let r = call(
        &s,
        "POST",
        "/api/v1/rooms/phones/phone-participants/left",
        Some(vendor_form),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    let ev = w.expect("left").await;
    assert_eq!(
        (&ev["members"], &ev["reason"]),
        (&json!(["a"]), &json!("left"))
    );

    // The middleware's bare array breaks the vendor's request schema, and is accepted.
    let middleware_form = json!(["b", "c"]);
    assert!(!doc.violations(left_req, &middleware_form).is_empty());
    let r = call(
        &s,
        "POST",
        "/api/v1/rooms/phones/phone-participants/left",
        Some(middleware_form),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    assert_eq!(w.expect("left").await["members"], json!(["b", "c"]));
}

/// Every operation in the vendor's document is either served (and exercised above) or
/// deliberately not served, which answers 404.
#[tokio::test]
async fn every_vendor_operation_is_served_or_deliberately_not() {
    let Some(doc) = vendor("every_vendor_operation_is_served_or_deliberately_not") else {
        return;
    };
    let ops = doc.operations();
    for (m, p) in &ops {
        let op = (m.as_str(), p.as_str());
        assert!(SERVED.contains(&op) ^ NOT_SERVED.contains(&op), "{m} {p}");
    }
    assert_eq!(ops.len(), SERVED.len() + NOT_SERVED.len());
    let s = server().await;
    for (m, p) in NOT_SERVED {
        let path = p.replace("{webhook}", "a853d608-e6cf-48eb-a3c9-7d089bbc09b0");
        assert_eq!(call(&s, m, &path, None).await.status, 404, "{m} {p}");
    }
}

/// The checker can fail: wrong types deep inside, nulls, the wrong `total_count` type, and the
/// vendor's own `type: datetime` defect (README) are all reported with their paths.
#[test]
fn the_checker_reports_what_breaks_the_schema() {
    let Some(doc) = vendor("the_checker_reports_what_breaks_the_schema") else {
        return;
    };
    let live = doc
        .json_schema("GET", "/api/v1/rooms/live/participants", 200)
        .unwrap();
    let bad = json!({"total_count": "1", "data": [{"id": "x", "session_duration": 1.5,
                     "live_participants": [{"id": 7, "name": null, "role": "phone"}]}]});
    assert_eq!(
        doc.violations(live, &bad),
        [
            "$.total_count: expected integer, got \"1\"",
            "$.data[0].session_duration: expected integer, got 1.5",
            "$.data[0].live_participants[0].id: expected string, got 7",
            "$.data[0].live_participants[0].name: null, but the schema is not nullable",
        ]
    );
    let list = doc.json_schema("GET", "/api/v1/rooms", 200).unwrap();
    assert_eq!(
        doc.violations(list, &json!({"total_count": 2, "data": []}))
            .len(),
        1
    );
    assert_eq!(
        doc.undocumented(list, &json!({"data": [{"id": "x", "nope": 1}], "more": 1})),
        ["$.data[].nope", "$.more"]
    );
    let create_req = doc.request_schema("POST", "/api/v1/rooms").unwrap();
    let v = doc.violations(
        create_req,
        &json!({"privacy": "public", "roles": [],
        "private_group_chat_roles": [], "expires_at": "2030-01-01T00:00:00Z"}),
    );
    assert_eq!(
        v,
        ["$.expires_at: the schema's type \"datetime\" is not an OpenAPI type"]
    );
}
