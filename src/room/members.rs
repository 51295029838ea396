//! The member set of one room, in join order, with its host rule. Pure data: no async, no I/O,
//! so the rules (host migration, batch removal) are unit-tested directly.

use std::borrow::Cow;
use std::collections::HashSet;

use indexmap::IndexMap;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio_util::time::delay_queue;

use crate::ids::{ConnId, MemberId};
use crate::protocol::{MemberKind, MemberView};

/// What keeps a member in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Its sockets: when the last one closes, the grace period starts.
    Socket,
    /// A REST API added it: it stays until an API call (or a façade timeout) removes it.
    Api,
}

/// One member.
#[derive(Debug)]
pub struct Member {
    /// Id.
    pub id: MemberId,
    /// Participant kind.
    pub kind: MemberKind,
    /// Display name.
    pub name: Option<String>,
    /// Façade metadata (phone number, external id, muted ...), not shown in panels.
    pub meta: Value,
    /// Live state.
    pub state: Value,
    /// Join time, ms since the epoch.
    pub joined_at: i64,
    /// Open sockets that joined as this member.
    pub conns: Vec<ConnId>,
    /// What keeps it here.
    pub binding: Binding,
    /// Pending grace-period timer, while it has no socket.
    pub grace: Option<delay_queue::Key>,
    /// The serialized panel row, once a panel needed it.
    pub row: RowCache,
}

/// A member's panel row as JSON, kept between panels: a `panel` of a big room is then a copy of
/// its rows instead of a fresh serialization of every one (each join of a 1,000-member room sends
/// the joiner a new panel). Cleared by [`Members::get_mut`], the only way to change a member, so
/// it cannot go stale.
#[derive(Debug, Default)]
pub struct RowCache(Option<Box<RawValue>>);

impl Member {
    /// The member's panel row, borrowing from the member.
    pub fn view(&self) -> MemberView<'_> {
        MemberView {
            id: Cow::Borrowed(self.id.as_str()),
            kind: self.kind,
            name: self.name.as_deref().map(Cow::Borrowed),
            state: Cow::Borrowed(&self.state),
            joined_at: self.joined_at,
        }
    }
}

/// What a removal did to the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostChange {
    /// The host stayed (it was not among the removed).
    Unchanged,
    /// The host left; this member, the first remaining in join order, took over.
    To(MemberId),
    /// The host left and nobody remains.
    Vacant,
}

/// Members in join order, and the host.
#[derive(Debug, Default)]
pub struct Members {
    map: IndexMap<MemberId, Member>,
    host: Option<MemberId>,
}

impl Members {
    /// Number of members.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// No members.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// The host.
    pub fn host(&self) -> Option<&MemberId> {
        self.host.as_ref()
    }
    /// A member.
    pub fn get(&self, id: &str) -> Option<&Member> {
        self.map.get(id)
    }
    /// A member, mutably (its cached panel row is dropped: the caller may change the row).
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Member> {
        let m = self.map.get_mut(id)?;
        m.row.0 = None;
        Some(m)
    }
    /// Whether `id` is a member.
    pub fn contains(&self, id: &str) -> bool {
        self.map.contains_key(id)
    }
    /// Members in join order.
    pub fn iter(&self) -> impl Iterator<Item = &Member> {
        self.map.values()
    }
    /// Panel rows in join order.
    pub fn views(&self) -> Vec<MemberView<'_>> {
        self.map.values().map(Member::view).collect()
    }

    /// Panel rows in join order, serialized (each row once, then from its [`RowCache`]).
    pub fn rows(&mut self) -> Vec<&RawValue> {
        for m in self.map.values_mut() {
            if m.row.0.is_none() {
                // A row is strings, numbers and a JSON value: serializing it cannot fail.
                let raw = serde_json::value::to_raw_value(&m.view()).expect("panel rows serialize");
                m.row.0 = Some(raw);
            }
        }
        self.map
            .values()
            .filter_map(|m| m.row.0.as_deref())
            .collect()
    }

    /// Appends a new member (the caller checked it is not one). Returns true when it became host
    /// (the first member of an empty room).
    pub fn insert(&mut self, member: Member) -> bool {
        let id = member.id.clone();
        self.map.insert(id.clone(), member);
        if self.host.is_none() {
            self.host = Some(id);
            true
        } else {
            false
        }
    }

    /// Removes every member in `ids` in one pass. Returns the removed members (join order) and
    /// what became of the host.
    pub fn remove_many(&mut self, ids: &HashSet<&str>) -> (Vec<Member>, HostChange) {
        let mut removed = Vec::new();
        if ids.len() == 1 {
            // The common case (one leave) without rebuilding the map.
            if let Some(id) = ids.iter().next() {
                if let Some(m) = self.map.shift_remove(*id) {
                    removed.push(m);
                }
            }
        } else {
            let old = std::mem::take(&mut self.map);
            for (k, m) in old {
                if ids.contains(k.as_str()) {
                    removed.push(m);
                } else {
                    self.map.insert(k, m);
                }
            }
        }
        let host_gone = self
            .host
            .as_ref()
            .is_some_and(|h| removed.iter().any(|m| &m.id == h));
        let change = if host_gone {
            self.host = self.map.keys().next().cloned();
            match &self.host {
                Some(h) => HostChange::To(h.clone()),
                None => HostChange::Vacant,
            }
        } else {
            HostChange::Unchanged
        };
        (removed, change)
    }

    /// Makes `id` the host. False if it is not a member.
    pub fn set_host(&mut self, id: &str) -> bool {
        match self.map.get_key_value(id) {
            Some((k, _)) => {
                self.host = Some(k.clone());
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> Member {
        Member {
            id: id.into(),
            kind: MemberKind::Player,
            name: None,
            meta: Value::Null,
            state: Value::Null,
            joined_at: 0,
            conns: Vec::new(),
            binding: Binding::Api,
            grace: None,
            row: RowCache::default(),
        }
    }

    /// The first member is host; when it leaves the next in join order takes over.
    #[test]
    fn host_passes_to_next_in_join_order() {
        let mut ms = Members::default();
        assert!(ms.insert(member("a")));
        assert!(!ms.insert(member("b")));
        assert!(!ms.insert(member("c")));
        let (gone, change) = ms.remove_many(&HashSet::from(["a"]));
        assert_eq!(gone.len(), 1);
        assert_eq!(change, HostChange::To(MemberId::from("b")));
        let (_, change) = ms.remove_many(&HashSet::from(["c"]));
        assert_eq!(
            change,
            HostChange::Unchanged,
            "a non-host leaving changes no host"
        );
    }

    /// A batch removes all named members at once, keeps join order, and empties the host.
    #[test]
    fn batch_removal_keeps_order_and_empties_host() {
        let mut ms = Members::default();
        for id in ["a", "b", "c", "d"] {
            ms.insert(member(id));
        }
        let (gone, change) = ms.remove_many(&HashSet::from(["a", "c", "zz"]));
        assert_eq!(
            gone.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        assert_eq!(change, HostChange::To(MemberId::from("b")));
        assert_eq!(
            ms.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["b", "d"]
        );
        let (_, change) = ms.remove_many(&HashSet::from(["b", "d"]));
        assert_eq!(change, HostChange::Vacant);
        assert!(ms.host().is_none());
    }

    fn panel_json(ms: &mut Members) -> (String, String) {
        let host = ms.host().cloned();
        let host = host.as_ref().map(MemberId::as_str);
        let plain = crate::protocol::ServerMsg::Panel {
            room: Cow::Borrowed("r"),
            epoch: Cow::Borrowed("e"),
            version: 7,
            host: host.map(Cow::Borrowed),
            members: ms.views(),
        }
        .to_frame();
        let rows = crate::protocol::PanelRows {
            room: "r",
            epoch: "e",
            version: 7,
            host,
            members: ms.rows(),
        }
        .to_frame();
        (plain.as_str().to_owned(), rows.as_str().to_owned())
    }

    /// A panel built from cached rows is byte for byte the panel serialized afresh, and a change
    /// through `get_mut` is never hidden by a stale row.
    #[test]
    fn cached_rows_make_the_same_panel_and_follow_changes() {
        let mut ms = Members::default();
        let (empty_plain, empty_rows) = panel_json(&mut ms);
        assert_eq!(empty_plain, empty_rows);
        for id in ["a", "b\"q\"", "ç\u{1}"] {
            ms.insert(member(id));
        }
        if let Some(m) = ms.get_mut("a") {
            m.name = Some("Ann \"the\" host".into());
            m.state = serde_json::json!({"x": [1, 2.5, null], "emoji": "🎲"});
            m.kind = MemberKind::Web;
        }
        let (plain, rows) = panel_json(&mut ms);
        assert_eq!(plain, rows);
        if let Some(m) = ms.get_mut("b\"q\"") {
            m.state = serde_json::json!("ready");
        }
        let (plain, rows) = panel_json(&mut ms);
        assert_eq!(plain, rows);
        assert!(rows.contains(r#""state":"ready""#), "{rows}");
    }
}
