//! The task log behind PLYR's asynchronous API (SEED-APIS §1.5): every mutating call becomes a
//! task with a Redis-stream-style id `<unix-ms>-<seq>`, pollable by `GET /task/status/{id}`.
//!
//! The vendor queues tasks in a Redis stream and a worker stores results in MongoDB; here the
//! "worker" is a spawned future that sends one command to the room actor, so tasks finish in
//! microseconds, but the observable protocol is the same: `PENDING` until the result is stored,
//! then `SUCCESS`/`FAILED` with the vendor's fields, and `NOT_FOUND` for an unknown id or one
//! evicted from the log (the vendor's trimmed stream). The log is bounded in age and count
//! (`[game] task_ttl_secs`, `max_tasks`); the oldest task goes first. A std mutex guards it: it
//! is held for a map operation, never across an `.await`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::store::Body;

/// A task id, `<unix-ms>-<seq>` like a Redis stream entry id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The vendor's task names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `POST /game/create`.
    Create,
    /// `POST /game/join`.
    Join,
    /// `POST /game/leave`.
    Leave,
    /// `POST /game/end`.
    End,
}

impl Method {
    /// The method named by [`Method::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Create, Self::Join, Self::Leave, Self::End]
            .into_iter()
            .find(|m| m.as_str() == s)
    }

    /// The task name as PLYR writes it into its stream.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "createGameRoom",
            Self::Join => "joinGameRoom",
            Self::Leave => "leaveGameRoom",
            Self::End => "endGameRoom",
        }
    }
}

/// How a task ended.
pub type Outcome = Result<Value, String>;

/// A completion time as the vendor writes it.
pub fn completed_now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The error message of a task the server restarted in the middle of.
pub const INTERRUPTED: &str = "The server restarted before this task finished; check the room";
/// The error of a task whose cluster node died before it finished.
pub const LOST: &str = "The node running this task stopped before it finished; check the room";

/// A task as stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    method: String,
    body: Value,
    created_ms: i64,
    /// `Some(true)`: succeeded with `ok`; `Some(false)`: failed with `error`; `None`: pending.
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    ok: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    completed_at: Option<String>,
}

enum State {
    Pending,
    Done {
        outcome: Outcome,
        completed_at: String,
    },
}

struct Task {
    created: Instant,
    /// `created` as wall-clock ms (what the store keeps).
    created_ms: i64,
    method: Method,
    body: Value,
    state: State,
}

struct Inner {
    last: (u64, u64),
    order: VecDeque<TaskId>,
    tasks: HashMap<TaskId, Task>,
}

/// The bounded task log.
pub struct Tasks {
    inner: Mutex<Inner>,
    ttl: Duration,
    max: usize,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks")
            .field("ttl", &self.ttl)
            .field("max", &self.max)
            .finish()
    }
}

impl Tasks {
    /// A log keeping tasks for `ttl`, at most `max` of them (`max` ≥ 1).
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                last: (0, 0),
                order: VecDeque::new(),
                tasks: HashMap::new(),
            }),
            ttl,
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update; the log is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new `PENDING` task and returns its id. Evicts expired and excess tasks.
    pub fn create(&self, method: Method, body: Value) -> TaskId {
        let now_ms = u64::try_from(crate::room::now_ms()).unwrap_or(0);
        let now = Instant::now();
        let mut g = self.lock();
        // Redis semantics: ids only grow, even if the clock steps back.
        let (ms, seq) = if now_ms > g.last.0 {
            (now_ms, 0)
        } else {
            (g.last.0, g.last.1 + 1)
        };
        g.last = (ms, seq);
        let id = TaskId(format!("{ms}-{seq}"));
        while g.order.len() >= self.max
            || g.order
                .front()
                .is_some_and(|f| expired(&g, f, now, self.ttl))
        {
            match g.order.pop_front() {
                Some(old) => {
                    g.tasks.remove(&old);
                }
                None => break,
            }
        }
        g.order.push_back(id.clone());
        g.tasks.insert(
            id.clone(),
            Task {
                created: now,
                created_ms: crate::room::now_ms(),
                method,
                body,
                state: State::Pending,
            },
        );
        id
    }

    /// Stores a task's outcome, completed now (ignored if it was evicted meanwhile).
    pub fn finish(&self, id: &TaskId, outcome: Outcome) {
        self.finish_at(id, outcome, completed_now());
    }

    /// Stores a task's outcome with its completion time (the one its stored record holds).
    pub fn finish_at(&self, id: &TaskId, outcome: Outcome, completed_at: String) {
        if let Some(t) = self.lock().tasks.get_mut(id) {
            t.state = State::Done {
                outcome,
                completed_at,
            };
        }
    }

    /// Drops a task that was never announced (its id was taken on another node).
    pub fn forget(&self, id: &TaskId) {
        let mut g = self.lock();
        g.tasks.remove(id);
        g.order.retain(|o| o != id);
    }

    /// Whether task `id` is known here (and not expired).
    pub fn contains(&self, id: &str) -> bool {
        let g = self.lock();
        g.tasks
            .get(&TaskId(id.to_owned()))
            .is_some_and(|t| t.created.elapsed() <= self.ttl)
    }

    /// The body of `GET /task/status/{id}` (always served with 200).
    pub fn status(&self, id: &str) -> Value {
        let g = self.lock();
        let key = TaskId(id.to_owned());
        let Some(t) = g
            .tasks
            .get(&key)
            .filter(|t| t.created.elapsed() <= self.ttl)
        else {
            return json!({ "status": "NOT_FOUND" });
        };
        match &t.state {
            State::Pending => json!({ "status": "PENDING" }),
            State::Done {
                outcome,
                completed_at,
            } => done_json(id, t.method, &t.body, outcome, completed_at),
        }
    }

    /// The body `GET /task/status/{id}` will serve once task `id` is done with `outcome` at
    /// `completed_at` (what a cluster writes to Redis before the result is pollable here);
    /// `None` if the task was evicted.
    pub fn done_status(&self, id: &TaskId, outcome: &Outcome, completed_at: &str) -> Option<Value> {
        let g = self.lock();
        let t = g.tasks.get(id)?;
        Some(done_json(
            id.as_str(),
            t.method,
            &t.body,
            outcome,
            completed_at,
        ))
    }

    /// The stored form of task `id`, with its outcome and completion time if it is done (what
    /// [`Tasks::restore`] reads back); `None` if the task was evicted.
    pub fn record(&self, id: &TaskId, done: Option<(&Outcome, &str)>) -> Option<Body> {
        let outcome = done.map(|(o, _)| o);
        let g = self.lock();
        let t = g.tasks.get(id)?;
        let stored = Stored {
            method: t.method.as_str().to_owned(),
            body: t.body.clone(),
            created_ms: t.created_ms,
            success: outcome.map(Result::is_ok),
            ok: outcome.and_then(|o| o.as_ref().ok().cloned()),
            error: outcome.and_then(|o| o.as_ref().err().cloned()),
            completed_at: done.map(|(_, at)| at.to_owned()),
        };
        Some(Body {
            json: serde_json::to_string(&stored).unwrap_or_default(),
            expires_at: Some(
                t.created_ms
                    .saturating_add(self.ttl.as_millis().min(i64::MAX as u128) as i64),
            ),
        })
    }

    /// Puts stored tasks back (at start, ids in order). A task stored as pending was cut off
    /// by the restart: it polls as `FAILED` (its room change may or may not have happened);
    /// those are returned, for the caller to store as failed (so the answer stays the same).
    pub fn restore(&self, stored: Vec<(String, String)>) -> Vec<TaskId> {
        let mut interrupted = Vec::new();
        let now = Instant::now();
        let now_ms = crate::room::now_ms();
        let mut g = self.lock();
        for (id, json) in stored {
            let Ok(s) = serde_json::from_str::<Stored>(&json) else {
                tracing::warn!(task = %id, "unreadable stored task skipped");
                continue;
            };
            let Some(method) = Method::parse(&s.method) else {
                continue;
            };
            let age = Duration::from_millis(now_ms.saturating_sub(s.created_ms).max(0) as u64);
            let state = match (s.success, s.completed_at) {
                (Some(true), Some(at)) => State::Done {
                    outcome: Ok(s.ok.unwrap_or(Value::Null)),
                    completed_at: at,
                },
                (Some(false), Some(at)) => State::Done {
                    outcome: Err(s.error.unwrap_or_default()),
                    completed_at: at,
                },
                _ => {
                    interrupted.push(TaskId(id.clone()));
                    State::Done {
                        outcome: Err(INTERRUPTED.into()),
                        completed_at: completed_now(),
                    }
                }
            };
            if let Some((ms, seq)) = id
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            {
                g.last = g.last.max((ms, seq));
            }
            let key = TaskId(id);
            g.order.push_back(key.clone());
            g.tasks.insert(
                key,
                Task {
                    created: now.checked_sub(age).unwrap_or(now),
                    created_ms: s.created_ms,
                    method,
                    body: s.body,
                    state,
                },
            );
        }
        interrupted
    }

    /// The stored form of a done task, as it is now (after [`Tasks::restore`]).
    pub fn record_done(&self, id: &TaskId) -> Option<Body> {
        let (outcome, at) = {
            let g = self.lock();
            match &g.tasks.get(id)?.state {
                State::Done {
                    outcome,
                    completed_at,
                } => (outcome.clone(), completed_at.clone()),
                State::Pending => return None,
            }
        };
        self.record(id, Some((&outcome, &at)))
    }

    /// Tasks currently kept.
    pub fn len(&self) -> usize {
        self.lock().tasks.len()
    }

    /// No task kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A done task's status body, as the vendor serves it.
fn done_json(
    id: &str,
    method: Method,
    body: &Value,
    outcome: &Outcome,
    completed_at: &str,
) -> Value {
    match outcome {
        Ok(result) => json!({
            "taskId": id,
            "taskData": { "method": method.as_str(), "body": body, "result": result },
            "status": "SUCCESS",
            "hash": null,
            "errorMessage": null,
            "completedAt": completed_at,
        }),
        Err(message) => json!({
            "taskId": id,
            // The vendor stores a failed task's raw stream entry [name, paramsJson].
            "taskData": { "0": method.as_str(), "1": body.to_string() },
            "status": "FAILED",
            "hash": null,
            "errorMessage": message,
            "completedAt": completed_at,
        }),
    }
}

fn expired(g: &Inner, id: &TaskId, now: Instant, ttl: Duration) -> bool {
    g.tasks
        .get(id)
        .is_none_or(|t| now.duration_since(t.created) > ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ids grow like Redis stream ids; statuses move PENDING → SUCCESS/FAILED; unknown → NOT_FOUND.
    #[test]
    fn lifecycle_and_shapes() {
        let t = Tasks::new(Duration::from_secs(60), 10);
        let a = t.create(Method::Create, json!({"gameId": "g", "expiresIn": 60}));
        let b = t.create(
            Method::Leave,
            json!({"plyrIds": ["x"], "gameId": "g", "roomId": "1"}),
        );
        let parse = |id: &TaskId| {
            let (ms, seq) = id.as_str().split_once('-').unwrap();
            (ms.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
        };
        assert!(parse(&b) > parse(&a), "{a} then {b}");
        assert_eq!(t.status(a.as_str()), json!({"status": "PENDING"}));
        t.finish(
            &a,
            Ok(json!({"gameId": "g", "roomId": "1", "roomAddress": "game:g:1"})),
        );
        let s = t.status(a.as_str());
        assert_eq!(s["status"], "SUCCESS");
        assert_eq!(s["taskId"], a.as_str());
        assert_eq!(s["taskData"]["method"], "createGameRoom");
        assert_eq!(s["taskData"]["result"]["roomId"], "1");
        assert_eq!(s["hash"], Value::Null);
        assert_eq!(s["errorMessage"], Value::Null);
        assert!(s["completedAt"].as_str().unwrap().ends_with('Z'));
        t.finish(&b, Err("Room not found".into()));
        let s = t.status(b.as_str());
        assert_eq!(s["status"], "FAILED");
        assert_eq!(s["errorMessage"], "Room not found");
        assert_eq!(s["taskData"]["0"], "leaveGameRoom");
        assert_eq!(t.status("1-0"), json!({"status": "NOT_FOUND"}));
    }

    /// The log is bounded by count (oldest first) and by age.
    #[test]
    fn bounded_by_count_and_age() {
        let t = Tasks::new(Duration::from_secs(60), 3);
        let ids: Vec<TaskId> = (0..5).map(|_| t.create(Method::End, json!({}))).collect();
        assert_eq!(t.len(), 3);
        assert_eq!(t.status(ids[0].as_str())["status"], "NOT_FOUND");
        assert_eq!(t.status(ids[1].as_str())["status"], "NOT_FOUND");
        assert_eq!(t.status(ids[4].as_str())["status"], "PENDING");
        let t = Tasks::new(Duration::ZERO, 100);
        let a = t.create(Method::End, json!({}));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(t.status(a.as_str())["status"], "NOT_FOUND");
        t.create(Method::End, json!({}));
        assert_eq!(t.len(), 1, "the expired task was evicted");
    }

    /// A stored task comes back as it was answered (same status, result and completion time);
    /// one stored while pending comes back `FAILED` and is reported for re-storing; ids go on
    /// growing after the restored ones.
    #[test]
    fn stored_tasks_come_back_as_answered() {
        let t = Tasks::new(Duration::from_secs(60), 10);
        let done = t.create(Method::Create, json!({"gameId": "g"}));
        let pending = t.create(Method::Leave, json!({"plyrIds": ["x"]}));
        let outcome: Outcome = Ok(json!(null));
        let at = completed_now();
        t.finish_at(&done, outcome.clone(), at.clone());
        let stored = vec![
            (
                done.to_string(),
                t.record(&done, Some((&outcome, &at))).unwrap().json,
            ),
            (pending.to_string(), t.record(&pending, None).unwrap().json),
        ];
        let before = t.status(done.as_str());

        let again = Tasks::new(Duration::from_secs(60), 10);
        let interrupted = again.restore(stored);
        assert_eq!(interrupted, vec![pending.clone()]);
        assert_eq!(again.status(done.as_str()), before, "answered the same");
        let p = again.status(pending.as_str());
        assert_eq!(p["status"], "FAILED");
        assert_eq!(p["errorMessage"], INTERRUPTED);
        let next = again.create(Method::End, json!({}));
        let parse = |id: &TaskId| {
            let (ms, seq) = id.as_str().split_once('-').unwrap();
            (ms.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
        };
        assert!(parse(&next) > parse(&pending), "{next} after {pending}");
    }
}
