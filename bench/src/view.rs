//! One client's view of its room: who is in it (a bitset over the room's member indexes), the
//! host, and the last version seen — checked on every event for gaps, duplicates and order.
//!
//! A bitset keeps 10 rooms × 1,000 members × 1,000 views at ~1.3 MB instead of ten million
//! strings. The rules are the protocol's: after the first `panel` every event must carry
//! version last + 1; a later `panel` (a lagging socket's resync) may jump ahead, announced.

use super::stats::Counters;
use super::ws::{member_index, Frame};

/// A client's picture of its room.
#[derive(Debug, Clone)]
pub struct View {
    bits: Vec<u64>,
    /// Members in the view.
    pub count: usize,
    /// Last version applied.
    pub version: u64,
    /// The host, by member index.
    pub host: Option<usize>,
    /// Panels received.
    pub panels: u32,
}

impl View {
    /// An empty view of a room with up to `size` members.
    pub fn new(size: usize) -> Self {
        Self {
            bits: vec![0; size.div_ceil(64)],
            count: 0,
            version: 0,
            host: None,
            panels: 0,
        }
    }

    /// Whether member `i` is in the view.
    pub fn has(&self, i: usize) -> bool {
        self.bits
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    fn set(&mut self, i: usize, on: bool) -> bool {
        let Some(w) = self.bits.get_mut(i / 64) else {
            return false;
        };
        let mask = 1u64 << (i % 64);
        let was = *w & mask != 0;
        if on {
            *w |= mask;
        } else {
            *w &= !mask;
        }
        match (was, on) {
            (false, true) => self.count += 1,
            (true, false) => self.count -= 1,
            _ => {}
        }
        was != on
    }

    /// Members present in one view and not the other.
    pub fn diff(&self, other: &View) -> usize {
        self.bits
            .iter()
            .zip(&other.bits)
            .map(|(a, b)| (a ^ b).count_ones() as usize)
            .sum()
    }

    /// A view holding exactly `ids` (a server panel's member ids).
    pub fn from_ids<'a>(size: usize, ids: impl IntoIterator<Item = &'a str>) -> Self {
        let mut v = Self::new(size);
        for id in ids {
            if let Some(i) = member_index(id) {
                v.set(i, true);
            }
        }
        v
    }

    /// Applies a `panel` or an event, counting anomalies in `c`. `on_left` is called with each
    /// member index a `left` event removes. Returns false when the frame was not applied
    /// (a duplicate or out-of-order version, or an event before any panel).
    pub fn apply(&mut self, f: &Frame<'_>, c: &Counters, mut on_left: impl FnMut(usize)) -> bool {
        let Some(v) = f.version else { return false };
        if f.ty == "panel" {
            if self.panels > 0 {
                Counters::inc(&c.resyncs);
                if v > self.version {
                    c.resync_skipped
                        .fetch_add(v - self.version, std::sync::atomic::Ordering::Relaxed);
                }
            }
            self.bits.iter_mut().for_each(|w| *w = 0);
            self.count = 0;
            for id in f.member_ids() {
                match member_index(&id) {
                    Some(i) => {
                        self.set(i, true);
                    }
                    None => Counters::inc(&c.inconsistent),
                }
            }
            self.host = f.host.as_deref().and_then(member_index);
            self.version = v;
            self.panels += 1;
            return true;
        }
        if self.panels == 0 {
            Counters::inc(&c.errors);
            return false;
        }
        if v <= self.version {
            Counters::inc(if v == self.version {
                &c.duplicates
            } else {
                &c.out_of_order
            });
            return false;
        }
        if v > self.version + 1 {
            c.gaps
                .fetch_add(v - self.version - 1, std::sync::atomic::Ordering::Relaxed);
        }
        self.version = v;
        Counters::inc(&c.events);
        match &*f.ty {
            "joined" => {
                for id in f.member_ids() {
                    match member_index(&id) {
                        Some(i) if self.set(i, true) => {}
                        _ => Counters::inc(&c.inconsistent),
                    }
                }
                if let Some(h) = f.host.as_deref() {
                    self.host = member_index(h);
                }
            }
            "left" => {
                for id in f.member_ids() {
                    match member_index(&id) {
                        Some(i) if self.set(i, false) => on_left(i),
                        _ => Counters::inc(&c.inconsistent),
                    }
                }
                if let Some(h) = f.host.as_deref() {
                    self.host = member_index(h);
                }
            }
            _ => {}
        }
        true
    }
}
