//! PLYR request signing on the live server: the SEED-APIS test vectors and every authentication
//! failure with the vendor's exact error string.

use crate::support::game::*;
use serde_json::{json, Value};

/// Both SEED-APIS test vectors verify on the live server: with their fixed 2023 timestamp the
/// signature passes and the request fails only the time window; one changed hex digit fails the
/// signature check instead.
#[tokio::test]
async fn seed_hmac_vectors_verify_on_the_server() {
    let g = start_game(|f| f.game.api_keys[0].secret_key = "test-secret".into()).await;
    let ts = "1700000000000";
    let body = r#"{"roomId":"123","sessionJwts":["jwt1"],"sync":true}"#;
    let v1 = "3c966071238a18a7689350226ebc91efaaff8917651119bdfa3b1e358784664b";
    let v2 = "a9ac3c6e3b3f80104f0cb589a9f3571e0d0671fbf216390f2ba7da859314af45";
    assert_eq!(hmac_hex("test-secret", ts, body), v1);
    assert_eq!(hmac_hex("test-secret", ts, "{}"), v2);
    let h = |sig: &str| {
        [
            ("apikey", API_KEY.to_string()),
            ("timestamp", ts.into()),
            ("signature", sig.into()),
        ]
    };
    let r = g.send("/api/game/leave", body.into(), &h(v1)).await;
    assert_eq!(r, (401, json!({"error": "Request expired"})));
    let r = g
        .send("/api/game/leave", body.into(), &h(&v1.replace('3', "4")))
        .await;
    assert_eq!(r, (401, json!({"error": "Invalid signature"})));
    let r = g.send("/api/game/end", String::new(), &h(v2)).await;
    assert_eq!(
        r,
        (401, json!({"error": "Request expired"})),
        "an empty POST body signs as {{}}"
    );
    let get =
        g.s.http
            .get(g.s.url("/task/status/1-0"))
            .header("apikey", API_KEY)
            .header("timestamp", ts)
            .header("signature", v2)
            .send()
            .await
            .unwrap();
    assert_eq!(get.status().as_u16(), 401);
    assert_eq!(
        get.json::<Value>().await.unwrap(),
        json!({"error": "Request expired"})
    );
}

/// Every authentication failure answers the vendor's status and string, in the vendor's order.
/// (403 `Insufficient permissions` cannot happen on these routes: all need `user`, the lowest
/// role; its check is unit-tested in `sign.rs`.)
#[tokio::test]
async fn every_auth_failure_has_the_vendor_string() {
    let g = start_game(|_| {}).await;
    let raw = r#"{"sync":true}"#.to_string();
    let at = |ts: String, body: &str| {
        let sig = hmac_hex(SECRET_KEY, &ts, body);
        vec![
            ("apikey", API_KEY.to_string()),
            ("timestamp", ts),
            ("signature", sig),
        ]
    };
    let now = now_ms();
    let good = at(now.to_string(), &raw);
    for missing in 0..3 {
        let mut h = good.clone();
        h.remove(missing);
        let r = g.send("/api/game/create", raw.clone(), &h).await;
        assert_eq!(r, (401, json!({"error": "Missing authentication headers"})));
    }
    let mut h = good.clone();
    h[0].1 = "nope".into();
    assert_eq!(
        g.send("/api/game/create", raw.clone(), &h).await,
        (401, json!({"error": "Invalid API key"}))
    );
    let tampered = r#"{"sync":true,"expiresIn":5}"#.to_string();
    assert_eq!(
        g.send("/api/game/create", tampered, &good).await,
        (401, json!({"error": "Invalid signature"}))
    );
    let expired = json!({"error": "Request expired"});
    for ts in [
        (now - 301_000).to_string(),
        (now + 301_000).to_string(),
        "NaN".into(),
        format!("{now}x"),
    ] {
        assert_eq!(
            g.send("/api/game/create", raw.clone(), &at(ts, &raw)).await,
            (401, expired.clone())
        );
    }
    // A body re-formatted in transit still verifies through its re-serialization.
    let pretty = "{ \"sync\" : true }\n".to_string();
    let (st, v) = g.send("/api/game/create", pretty, &good).await;
    assert_eq!((st, &v["status"]), (200, &json!("SUCCESS")), "{v}");
    // Bad JSON and oversize bodies get the vendor's `{error}` shape.
    let (st, v) = g.send("/api/game/create", "{".into(), &good).await;
    assert_eq!(st, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid JSON body"),
        "{v}"
    );
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(70 * 1024));
    assert_eq!(
        g.send("/api/game/create", big.clone(), &at(now.to_string(), &big))
            .await,
        (413, json!({"error": "Payload too large"}))
    );
}
