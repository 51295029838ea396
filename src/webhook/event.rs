//! From room events to webhook envelopes: the pure half of the dispatcher (no I/O, unit-tested).
//!
//! A room's `left` frame carries only member ids, but a `participant_left` webhook should say who
//! left (name, kind). [`Mapper`] therefore keeps a per-room cache of members (filled by `joined`)
//! and of the current host, and turns each frame into zero or more [`Envelope`]s:
//!
//! | frame | envelopes |
//! |---|---|
//! | `joined` | one `participant_joined` per new member (a row update of a known id is silent), then `host_changed` if `host` is set |
//! | `left` | one `participant_left` per member (with `reason`, `by`), then `host_changed` if `host` is set |
//! | `host` | `host_changed` |
//! | `closed` | `room_closed` (the room's cache is dropped) |
//! | anything else | nothing |

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use crate::ids::RoomId;
use crate::protocol::{MemberKind, ServerMsg};

/// One webhook event, before delivery: the Digital Samba envelope `{event, timestamp, data}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// `participant_joined`, `participant_left`, `host_changed` or `room_closed`.
    pub event: &'static str,
    /// When the dispatcher saw the room event.
    pub timestamp: DateTime<Utc>,
    /// The event's fields.
    pub data: Value,
}

impl Envelope {
    /// The POST body: `{"event", "timestamp" (RFC 3339, UTC, ms), "data"}`.
    pub fn body(&self) -> Bytes {
        let v = json!({
            "event": self.event,
            "timestamp": self.timestamp.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": self.data,
        });
        Bytes::from(v.to_string())
    }
}

#[derive(Debug, Clone)]
struct Known {
    name: Option<String>,
    kind: MemberKind,
}

#[derive(Debug, Default)]
struct RoomCache {
    members: HashMap<String, Known>,
    /// Join order, for `room_closed`'s participant list.
    order: Vec<String>,
    host: Option<String>,
}

/// Maps room frames to envelopes, remembering who is in each room.
#[derive(Debug, Default)]
pub struct Mapper {
    rooms: HashMap<RoomId, RoomCache>,
}

fn kind_str(k: MemberKind) -> &'static str {
    match k {
        MemberKind::Player => "player",
        MemberKind::Phone => "phone",
        MemberKind::Web => "web",
    }
}

/// The participant fields shared by joined and left.
fn participant(room: &RoomId, id: &str, known: Option<&Known>, version: u64) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("room_id".into(), json!(room.as_str()));
    d.insert("participant_id".into(), json!(id));
    d.insert("name".into(), json!(known.and_then(|k| k.name.as_deref())));
    d.insert("type".into(), json!(known.map(|k| kind_str(k.kind))));
    if known.is_some_and(|k| k.kind == MemberKind::Phone) {
        d.insert("call_id".into(), json!(id));
    }
    d.insert("version".into(), json!(version));
    d
}

impl Mapper {
    /// Rooms with cached members (for tests and diagnostics).
    pub fn rooms(&self) -> usize {
        self.rooms.len()
    }

    /// Remembers a room's members as a restarted process resumes it, so its later `left`
    /// events still say who left (name and kind), as they would have without the restart.
    pub fn seed(&mut self, room: &RoomId, rec: &crate::store::RoomRecord) {
        let cache = self.rooms.entry(room.clone()).or_default();
        for m in &rec.members {
            cache.order.push(m.id.clone());
            cache.members.insert(
                m.id.clone(),
                Known {
                    name: m.name.clone(),
                    kind: m.kind,
                },
            );
        }
        cache.host = rec.host.clone();
        if cache.members.is_empty() {
            self.rooms.remove(room);
        }
    }

    /// The envelopes for one frame of `room`. A frame that does not parse maps to nothing.
    pub fn map(&mut self, room: &RoomId, frame: &[u8], now: DateTime<Utc>) -> Vec<Envelope> {
        let Ok(msg) = serde_json::from_slice::<ServerMsg<'_>>(frame) else {
            return Vec::new();
        };
        // Every versioned envelope carries the epoch of its version (protocol/webhooks.md).
        let epoch = match &msg {
            ServerMsg::Joined { epoch, .. }
            | ServerMsg::Left { epoch, .. }
            | ServerMsg::Host { epoch, .. } => Some(Value::String(epoch.to_string())),
            _ => None,
        };
        let mut out = self.map_msg(room, msg, now);
        if let Some(epoch) = epoch {
            for e in &mut out {
                if let Value::Object(d) = &mut e.data {
                    d.insert("epoch".into(), epoch.clone());
                }
            }
        }
        out
    }

    fn map_msg(&mut self, room: &RoomId, msg: ServerMsg<'_>, now: DateTime<Utc>) -> Vec<Envelope> {
        let env = |event, data: Map<String, Value>| Envelope {
            event,
            timestamp: now,
            data: Value::Object(data),
        };
        let mut out = Vec::new();
        match msg {
            ServerMsg::Joined {
                version,
                members,
                host,
                ..
            } => {
                let cache = self.rooms.entry(room.clone()).or_default();
                for m in members {
                    let known = Known {
                        name: m.name.map(|n| n.into_owned()),
                        kind: m.kind,
                    };
                    let id = m.id.into_owned();
                    let fresh = !cache.members.contains_key(&id);
                    if fresh {
                        cache.order.push(id.clone());
                        out.push(env(
                            "participant_joined",
                            participant(room, &id, Some(&known), version),
                        ));
                    }
                    cache.members.insert(id, known);
                }
                if let Some(h) = host {
                    out.extend(
                        Self::host_change(cache, room, h.into_owned(), None, version)
                            .map(|d| env("host_changed", d)),
                    );
                }
            }
            ServerMsg::Left {
                version,
                members,
                reason,
                by,
                host,
                ..
            } => {
                let cache = self.rooms.entry(room.clone()).or_default();
                for id in &members {
                    let known = cache.members.remove(id.as_ref());
                    let mut d = participant(room, id, known.as_ref(), version);
                    d.insert("reason".into(), json!(reason.as_str()));
                    d.insert("by".into(), json!(by.as_deref()));
                    out.push(env("participant_left", d));
                }
                cache.order.retain(|id| cache.members.contains_key(id));
                match host {
                    Some(h) => out.extend(
                        Self::host_change(cache, room, h.into_owned(), None, version)
                            .map(|d| env("host_changed", d)),
                    ),
                    None => {
                        if cache
                            .host
                            .as_ref()
                            .is_some_and(|h| !cache.members.contains_key(h))
                        {
                            cache.host = None; // the room emptied: no host, no event
                        }
                    }
                }
                if cache.members.is_empty() {
                    self.rooms.remove(room);
                }
            }
            ServerMsg::Host {
                version, host, by, ..
            } => {
                let cache = self.rooms.entry(room.clone()).or_default();
                let by = by.map(|b| b.into_owned());
                out.extend(
                    Self::host_change(cache, room, host.into_owned(), by, version)
                        .map(|d| env("host_changed", d)),
                );
            }
            ServerMsg::Closed { reason, .. } => {
                let cache = self.rooms.remove(room).unwrap_or_default();
                let mut d = Map::new();
                d.insert("room_id".into(), json!(room.as_str()));
                d.insert("reason".into(), json!(reason));
                d.insert("participants".into(), json!(cache.order));
                out.push(env("room_closed", d));
            }
            ServerMsg::Panel { .. }
            | ServerMsg::State { .. }
            | ServerMsg::Updated { .. }
            | ServerMsg::Kicked { .. }
            | ServerMsg::Ack { .. }
            | ServerMsg::Error { .. }
            | ServerMsg::Pong { .. } => {}
        }
        out
    }

    fn host_change(
        cache: &mut RoomCache,
        room: &RoomId,
        host: String,
        by: Option<String>,
        version: u64,
    ) -> Option<Map<String, Value>> {
        if cache.host.as_deref() == Some(host.as_str()) {
            return None;
        }
        let previous = cache.host.replace(host.clone());
        let mut d = Map::new();
        d.insert("room_id".into(), json!(room.as_str()));
        d.insert("host".into(), json!(host));
        d.insert("previous_host".into(), json!(previous));
        d.insert("by".into(), json!(by));
        d.insert("version".into(), json!(version));
        Some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(m: &mut Mapper, frame: Value) -> Vec<(String, Value)> {
        m.map(&RoomId::from("r"), frame.to_string().as_bytes(), Utc::now())
            .into_iter()
            .map(|e| (e.event.to_owned(), e.data))
            .collect()
    }

    fn row(id: &str, kind: &str, name: &str) -> Value {
        json!({"id": id, "kind": kind, "name": name, "state": null, "joinedAt": 1})
    }

    /// A leave carries the name and kind remembered from the join, and a host hand-over follows.
    #[test]
    fn left_carries_what_joined_said() {
        let mut m = Mapper::default();
        let out = map(
            &mut m,
            json!({"type":"joined","room":"r","version":1,"members":[row("a","player","Ann")],"host":"a"}),
        );
        assert_eq!(out[0].0, "participant_joined");
        assert_eq!(out[0].1["name"], "Ann");
        assert_eq!(out[1].0, "host_changed");
        assert_eq!(out[1].1["previous_host"], Value::Null);
        let out = map(
            &mut m,
            json!({"type":"joined","room":"r","version":2,"members":[row("p1","phone","+1 555")]}),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1["call_id"], "p1");
        assert_eq!(out[0].1["type"], "phone");
        let out = map(
            &mut m,
            json!({"type":"left","room":"r","version":3,"members":["a"],"reason":"kick","by":"x","host":"p1"}),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, "participant_left");
        assert_eq!(out[0].1["name"], "Ann");
        assert_eq!(out[0].1["type"], "player");
        assert_eq!(out[0].1["reason"], "kick");
        assert_eq!(out[0].1["by"], "x");
        assert_eq!(out[1].0, "host_changed");
        assert_eq!(out[1].1["host"], "p1");
        assert_eq!(out[1].1["previous_host"], "a");
    }

    /// A row update of a known member is not a second join; closing lists who was there.
    #[test]
    fn upsert_is_silent_and_close_lists_participants() {
        let mut m = Mapper::default();
        map(
            &mut m,
            json!({"type":"joined","room":"r","version":1,"members":[row("a","web","A"), row("b","web","B")],"host":"a"}),
        );
        let out = map(
            &mut m,
            json!({"type":"joined","room":"r","version":2,"members":[row("a","web","A2")]}),
        );
        assert!(out.is_empty(), "{out:?}");
        let out = map(
            &mut m,
            json!({"type":"state","room":"r","version":3,"member":"a","state":1}),
        );
        assert!(out.is_empty());
        let out = map(&mut m, json!({"type":"closed","room":"r","reason":"ended"}));
        assert_eq!(out[0].0, "room_closed");
        assert_eq!(out[0].1["participants"], json!(["a", "b"]));
        assert_eq!(m.rooms(), 0);
    }

    /// The last leave forgets the room; garbage maps to nothing.
    #[test]
    fn empty_rooms_are_forgotten() {
        let mut m = Mapper::default();
        map(
            &mut m,
            json!({"type":"joined","room":"r","version":1,"members":[row("a","player","A")],"host":"a"}),
        );
        let out = map(
            &mut m,
            json!({"type":"left","room":"r","version":2,"members":["a"],"reason":"leave"}),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(m.rooms(), 0);
        assert!(m
            .map(&RoomId::from("r"), b"not json", Utc::now())
            .is_empty());
    }

    /// The body is the Digital Samba envelope.
    #[test]
    fn body_is_the_envelope() {
        let e = Envelope {
            event: "room_closed",
            timestamp: DateTime::from_timestamp(1_700_000_000, 5_000_000).unwrap_or_default(),
            data: json!({"room_id": "r"}),
        };
        let v: Value = serde_json::from_slice(&e.body()).unwrap_or_default();
        assert_eq!(
            v,
            json!({"event":"room_closed","timestamp":"2023-11-14T22:13:20.005Z","data":{"room_id":"r"}})
        );
    }
}
