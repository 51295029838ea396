//! Digital Samba bodies: the JSON body reader, phone `joined`/`left` batches, and the list
//! query string.

use axum::body::Bytes;
use axum::extract::Query;
use axum::http::Uri;

use crate::facade::video::body::{json_body, json_object, Page, PAGE_MAX};
use crate::facade::video::error::VideoError;
use crate::facade::video::phone::MAX_TEXT;
use crate::facade::video::phone::{caller_number, is_e164, parse_joined, parse_left, MAX_BATCH};

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Properties, for any body (and the same bytes as a query string):
/// - nothing panics; every refusal of a body is a 422 field error ([`VideoError::Invalid`]);
/// - `json_object` accepts exactly the blank bodies and JSON objects;
/// - an accepted `joined` batch has 1..=[`MAX_BATCH`] callers with distinct call ids of
///   1..=[`MAX_TEXT`] characters, each with a name or a number, numbers already in stored form;
/// - an accepted `left` batch has 1..=[`MAX_BATCH`] ids of 1..=[`MAX_TEXT`] characters;
/// - an accepted query has a limit in 1..=[`PAGE_MAX`].
pub fn check(data: &[u8]) {
    let blank = data.iter().all(u8::is_ascii_whitespace);
    let obj = json_object(Ok(Bytes::copy_from_slice(data)));
    match (&obj, blank) {
        (Ok(m), true) => assert!(m.is_empty()),
        (Ok(_), false) | (Err(VideoError::Invalid(_)), _) => {}
        (Err(e), _) => panic!("json_object refused with {e:?}"),
    }
    match json_body(Ok(Bytes::copy_from_slice(data))) {
        Err(VideoError::Invalid(_)) => {}
        Err(e) => panic!("json_body refused with {e:?}"),
        Ok(v) => {
            assert!(!blank, "a blank body is refused");
            assert_eq!(
                obj.is_ok(),
                v.is_object(),
                "json_object accepts objects only"
            );
            check_joined(&v);
            check_left(&v);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        check_query(text);
    }
}

fn check_joined(v: &serde_json::Value) {
    match parse_joined(v) {
        Err(VideoError::Invalid(_)) => {}
        Err(e) => panic!("parse_joined refused with {e:?}"),
        Ok(callers) => {
            assert!((1..=MAX_BATCH).contains(&callers.len()));
            for (i, c) in callers.iter().enumerate() {
                assert!((1..=MAX_TEXT).contains(&chars(&c.call_id)));
                assert!(
                    callers[..i].iter().all(|o| o.call_id != c.call_id),
                    "call ids are distinct"
                );
                assert!(c.name.is_some() || c.caller_number.is_some());
                if let Some(n) = &c.caller_number {
                    assert_eq!(&caller_number(n), n, "stored numbers are a fixed point");
                    if n.starts_with('+') && n.len() <= 16 {
                        // A stored `+` number is E.164 or could not be compacted to it.
                        assert!(is_e164(n) || !is_e164(&caller_number(n)));
                    }
                }
                for t in [&c.name, &c.external_id].into_iter().flatten() {
                    assert!((1..=MAX_TEXT).contains(&chars(t)));
                }
            }
        }
    }
}

fn check_left(v: &serde_json::Value) {
    match parse_left(v) {
        Err(VideoError::Invalid(_)) => {}
        Err(e) => panic!("parse_left refused with {e:?}"),
        Ok(ids) => {
            assert!((1..=MAX_BATCH).contains(&ids.len()));
            for id in &ids {
                assert!((1..=MAX_TEXT).contains(&chars(id.as_str())));
            }
        }
    }
}

fn check_query(text: &str) {
    let Ok(uri) = format!("/rooms?{text}").parse::<Uri>() else {
        return; // not a request line axum would route
    };
    let q = Query::<Vec<(String, String)>>::try_from_uri(&uri);
    match Page::parse(q) {
        Err(VideoError::Invalid(_)) => {}
        Err(e) => panic!("Page::parse refused with {e:?}"),
        Ok(p) => assert!((1..=PAGE_MAX).contains(&p.limit)),
    }
}
