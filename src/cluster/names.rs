//! The façades' indexes that must be the same on every node.
//!
//! **Names** that mean one room across the cluster: a video room's `friendly_url` within its
//! team (unique: claimed before a create or a rename is applied) and a lobby's invite code
//! (unique by construction, 40 random bits: published once the lobby has it). The forwarding
//! middleware resolves a call that names a room this way (`/api/v1/rooms/{friendly_url}…`,
//! `/lobbies/code/{code}/players`) to the room, and from there to its owner.
//!
//! **Slots** a player holds in one room at a time: a lobby player's lobby within its
//! configuration (a stale slot, whose room no longer counts the player, is taken over).
//!
//! **Room sets** per tenant, in creation order: a team's video rooms (`GET /api/v1/rooms` lists
//! them from any node) and a key's lobbies; their sizes are what the per-tenant caps count.
//!
//! Keys: `rc:nm:{<ns>|<name>}`, a hash (`room`: the id of the room holding the name, `at`: when
//! it was claimed, Redis time); `rc:ix:{<ns>}`, a sorted set of room ids scored by creation
//! time; and `rc:{r:<room>}:names`, the name and set keys a room is in, so that a room closing
//! for good (its record deleted) leaves them all. A name whose room is gone
//! without that (neither a lease nor a record: its node died first, or the record expired) is
//! free for the next claim.

use redis::AsyncCommands;

use super::{link, Cluster};
use crate::room::RoomError;

/// Takes the name for `ARGV[1]` if it is free or already its own, or held by `ARGV[2]` (a room
/// found gone; `""`: none) for longer than `ARGV[3]` ms (a create claims its name just before
/// its room exists); returns the holder now.
const CLAIM: &str = r"
local v = redis.call('HGET', KEYS[1], 'room')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or '0')
local gone = v == ARGV[2] and now - at > tonumber(ARGV[3])
if (not v) or v == ARGV[1] or gone then
  redis.call('HSET', KEYS[1], 'room', ARGV[1], 'at', now)
  return ARGV[1]
end
return v";

/// Adds `ARGV[2]` (scored `ARGV[1]`) to the set unless it holds `ARGV[3]` (> 0) members already.
const ADD_CAPPED: &str = r"
local cap = tonumber(ARGV[3])
if cap > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[2])
    and redis.call('ZCARD', KEYS[1]) >= cap then
  return 0
end
redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2])
return 1";

/// How long a claimed name is held even though its room does not exist (yet).
const YOUNG_MS: u64 = 10_000;
/// How long a claimed slot is held even though its room does not count the player (yet: a
/// join claims the slot just before the room applies it).
const SLOT_YOUNG_MS: u64 = 5_000;

/// Deletes the name if `ARGV[1]` holds it.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], 'room') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// `%`, `|`, `{` and `}` escaped, so that no two (namespace, name) pairs share a key.
fn esc(s: &str) -> String {
    s.replace('%', "%25")
        .replace('|', "%7C")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

fn key(ns: &str, name: &str) -> String {
    format!("rc:nm:{{{}|{}}}", esc(ns), esc(name))
}

fn set_key(ns: &str) -> String {
    format!("rc:ix:{{{}}}", esc(ns))
}

/// The name keys `room` holds.
fn held_key(room: &str) -> String {
    format!("rc:{{r:{room}}}:names")
}

/// `room` closed for good: its names are free again and it leaves its sets.
pub(super) async fn drop_room(c: &Cluster, room: &str) {
    let held = held_key(room);
    let keys: Vec<String> = match c.redis.clone().smembers(&held).await {
        Ok(k) => k,
        Err(_) => return, // they free themselves once a claim finds the room gone
    };
    for k in &keys {
        if k.starts_with("rc:ix:") {
            let _: Result<i64, _> = c.redis.clone().zrem(k, room).await;
        } else {
            c.release_key(k, room).await;
        }
    }
    if !keys.is_empty() {
        let _: Result<i64, _> = c.redis.clone().del(&held).await;
    }
}

fn unavailable(e: redis::RedisError) -> RoomError {
    tracing::warn!(error = %e, "cluster name index unreachable");
    RoomError::Unavailable
}

impl Cluster {
    /// Claims `name` in namespace `ns` for `room` cluster-wide: true if it was free, already
    /// `room`'s, or held by a room that no longer exists; false if another room holds it.
    pub async fn claim_name(&self, ns: &str, name: &str, room: &str) -> Result<bool, RoomError> {
        let exists = |holder: String| async move { self.room_exists(&holder).await };
        let held = self.claim_with(ns, name, room, YOUNG_MS, exists).await?;
        Ok(held.is_none())
    }

    /// Claims `name` in `ns` for `room`, as a slot that one room at a time may hold (a player's
    /// lobby): `None` if claimed, else the room that holds it. `holds(holder)` says whether the
    /// holder still does (false: its claim is stale and taken over, once it is 5 s old).
    pub async fn claim_slot<F, Fut>(
        &self,
        ns: &str,
        name: &str,
        room: &str,
        holds: F,
    ) -> Result<Option<String>, RoomError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<bool, RoomError>>,
    {
        self.claim_with(ns, name, room, SLOT_YOUNG_MS, holds).await
    }

    async fn claim_with<F, Fut>(
        &self,
        ns: &str,
        name: &str,
        room: &str,
        young_ms: u64,
        holds: F,
    ) -> Result<Option<String>, RoomError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<bool, RoomError>>,
    {
        let k = key(ns, name);
        let mut stale = String::new();
        for _ in 0..2 {
            let holder: String = redis::Script::new(CLAIM)
                .key(&k)
                .arg(room)
                .arg(&stale)
                .arg(young_ms)
                .invoke_async(&mut self.redis.clone())
                .await
                .map_err(unavailable)?;
            if holder == room {
                // Listed with the room, which gives it back when it closes (a failure here
                // leaves a name that frees itself once the room is gone).
                let _: Result<i64, _> = self.redis.clone().sadd(held_key(room), &k).await;
                return Ok(None);
            }
            if holder == stale || holds(holder.clone()).await? {
                return Ok(Some(holder)); // held, or claimed too recently to be judged gone
            }
            stale = holder; // gone: take it over, unless someone else did meanwhile
        }
        Ok(Some(stale))
    }

    /// The room holding `name` in `ns`, if any.
    pub async fn name_holder(&self, ns: &str, name: &str) -> Result<Option<String>, RoomError> {
        self.redis
            .clone()
            .hget(key(ns, name), "room")
            .await
            .map_err(unavailable)
    }

    /// Gives `name` back if `room` holds it (best effort: a name left behind frees itself once
    /// its room is gone).
    pub async fn release_name(&self, ns: &str, name: &str, room: &str) {
        let k = key(ns, name);
        self.release_key(&k, room).await;
        let _: Result<i64, _> = self.redis.clone().srem(held_key(room), &k).await;
    }

    async fn release_key(&self, k: &str, room: &str) {
        let r: Result<i64, _> = redis::Script::new(RELEASE)
            .key(k)
            .arg(room)
            .invoke_async(&mut self.redis.clone())
            .await;
        if let Err(e) = r {
            tracing::debug!(key = k, error = %e, "name not released (it frees itself later)");
        }
    }

    /// Adds `room` to the set `ns` (in creation order; a room already in keeps its place) unless
    /// the set holds `cap` rooms already (0: no cap): false then. The count and the add are one step, so two nodes racing for a tenant's last room
    /// cannot both have it.
    pub async fn set_add_capped(
        &self,
        ns: &str,
        room: &str,
        cap: usize,
    ) -> Result<bool, RoomError> {
        let k = set_key(ns);
        let added: i64 = redis::Script::new(ADD_CAPPED)
            .key(&k)
            .arg(crate::room::now_ms())
            .arg(room)
            .arg(cap)
            .invoke_async(&mut self.redis.clone())
            .await
            .map_err(unavailable)?;
        if added == 0 {
            return Ok(false);
        }
        let _: Result<i64, _> = self.redis.clone().sadd(held_key(room), &k).await;
        Ok(true)
    }

    /// Takes `room` out of the set `ns`.
    pub async fn set_remove(&self, ns: &str, room: &str) {
        let k = set_key(ns);
        let _: Result<i64, _> = self.redis.clone().zrem(&k, room).await;
        let _: Result<i64, _> = self.redis.clone().srem(held_key(room), &k).await;
    }

    /// The rooms of the set `ns`, oldest first.
    pub async fn set_members(&self, ns: &str) -> Result<Vec<String>, RoomError> {
        self.redis
            .clone()
            .zrange(set_key(ns), 0, -1)
            .await
            .map_err(unavailable)
    }

    /// How many rooms the set `ns` holds, as a cap of `cap` (0: none) counts them: at the cap,
    /// rooms gone without leaving the set (their node died before their first record, a
    /// record expired) are taken out first.
    pub async fn set_count(&self, ns: &str, cap: usize) -> Result<usize, RoomError> {
        let n = self.set_len(ns).await?;
        if cap == 0 || n < cap {
            return Ok(n);
        }
        let k = set_key(ns);
        let members: Vec<(String, i64)> = self
            .redis
            .clone()
            .zrange_withscores(&k, 0, -1)
            .await
            .map_err(unavailable)?;
        let old = crate::room::now_ms() - YOUNG_MS as i64;
        for (room, at) in members {
            if at < old && !self.room_exists(&room).await? {
                tracing::info!(set = ns, %room, "a room gone without leaving its set: removed");
                let _: Result<i64, _> = self.redis.clone().zrem(&k, &room).await;
            }
        }
        self.set_len(ns).await
    }

    /// How many rooms the set `ns` holds.
    pub async fn set_len(&self, ns: &str) -> Result<usize, RoomError> {
        self.redis
            .clone()
            .zcard(set_key(ns))
            .await
            .map_err(unavailable)
    }

    /// Whether `room` has an owner or a record in Redis.
    async fn room_exists(&self, room: &str) -> Result<bool, RoomError> {
        if link::holder(self, room)
            .await
            .map_err(unavailable)?
            .is_some()
        {
            return Ok(true);
        }
        Ok(link::record(self, room)
            .await
            .map_err(unavailable)?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_pairs_share_a_key() {
        assert_ne!(key("v/a|b", "c"), key("v/a", "b|c"));
        assert_ne!(key("v/a}", "b"), key("v/a", "}b"));
        assert_eq!(key("code", "ABC"), "rc:nm:{code|ABC}");
    }
}
