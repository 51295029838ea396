//! What one request does: parsing, the checks made before any room is asked, and the room
//! command it becomes.
//!
//! A request is one of three [`Step`]s. Its reply may be known at once (`ping`, a refusal decided
//! here). It may go to a room the socket is already in without waiting for the room's work
//! (`state`, `sync`, `leave`, `kick`): those are pipelined, and a room handles one socket's
//! commands in the order sent, so the effects and reply codes are those of one at a time. Or it must run alone
//! (`join`, `watch`): it changes which rooms the socket is in, which later requests depend on,
//! so it waits for every earlier reply and finishes before the next request is read.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use crate::app::App;
use crate::conn::Conn;
use crate::frame::Frame;
use crate::ids::{valid_room_name, RoomId, RESERVED_PREFIXES};
use crate::protocol::{ClientMsg, ErrorCode, Ref, ServerMsg};
use crate::room::{Answer, Command, RoomError, RoomKind, RoomSpec};

/// What a request turned into.
pub(super) enum Step {
    /// The reply is known now.
    Now(Frame),
    /// The request is with a room; the reply comes when the room answers.
    Later(Later),
    /// A `join` or `watch`, to run alone with [`subscribe`].
    Alone(Subscribe),
}

/// A request a room is working on.
pub(super) struct Later {
    reference: Option<Ref>,
    answer: Answer<()>,
}

impl Later {
    /// The reply, if the room has answered.
    pub(super) fn now(&mut self) -> Option<Frame> {
        self.answer.now().map(|r| reply(self.reference.as_ref(), r))
    }

    /// Waits for the room's answer. Cancel-safe: the answer stays here until it arrives.
    pub(super) async fn reply(&mut self) -> Frame {
        let r = (&mut self.answer).await;
        reply(self.reference.as_ref(), r)
    }
}

/// A `join` (member) or `watch` (subscriber only) request.
pub(super) struct Subscribe {
    room: String,
    join: bool,
    state: Option<Value>,
    reference: Option<Ref>,
}

fn reply(reference: Option<&Ref>, r: Result<(), RoomError>) -> Frame {
    match r {
        Ok(()) => ack(reference),
        Err(e) => {
            let (code, message) = room_err(e);
            error(reference, code, message)
        }
    }
}

pub(super) fn error(reference: Option<&Ref>, code: ErrorCode, message: impl Into<String>) -> Frame {
    error_after(reference, code, message, None)
}

fn error_after(
    reference: Option<&Ref>,
    code: ErrorCode,
    message: impl Into<String>,
    retry_after: Option<f64>,
) -> Frame {
    ServerMsg::Error {
        reference: reference.map(Cow::Borrowed),
        code,
        message: Cow::Owned(message.into()),
        retry_after,
    }
    .to_frame()
}

fn ack(reference: Option<&Ref>) -> Frame {
    ServerMsg::Ack {
        reference: reference.map(Cow::Borrowed),
    }
    .to_frame()
}

/// Parses one request and starts it: see [`Step`]. Waits for room mailbox space, never for a
/// room's work.
pub(super) async fn step(app: &App, conn: &Arc<Conn>, text: &str) -> Step {
    let mut msg = match parse_request(text) {
        Ok(m) => m,
        Err(reply) => return Step::Now(reply),
    };
    let cut_off = app.registry.cluster().is_some_and(|c| !c.redis_up());
    if cut_off && !matches!(msg, ClientMsg::Ping { .. }) {
        // Changing a room now would diverge from the rest of the cluster: refuse, retry later.
        return Step::Now(error(
            msg.reference_mut().as_ref(),
            ErrorCode::Unavailable,
            "the cluster's Redis is unreachable; retry shortly",
        ));
    }
    let c = || conn.clone();
    match msg {
        ClientMsg::Ping { reference } => Step::Now(
            ServerMsg::Pong {
                reference: reference.as_ref().map(Cow::Borrowed),
            }
            .to_frame(),
        ),
        ClientMsg::Join {
            room,
            state,
            reference,
        } => match state_size_ok(app, state.as_ref()) {
            Err((code, message)) => Step::Now(error(reference.as_ref(), code, message)),
            Ok(()) => Step::Alone(Subscribe {
                room,
                join: true,
                state,
                reference,
            }),
        },
        ClientMsg::Watch { room, reference } => Step::Alone(Subscribe {
            room,
            join: false,
            state: None,
            reference,
        }),
        ClientMsg::Leave { room, reference } => {
            to_room(conn, &room, reference, |reply| Command::Leave {
                conn: c(),
                reply,
            })
            .await
        }
        ClientMsg::Kick {
            room,
            member,
            reference,
        } => {
            let by = Some(conn.member().clone());
            let target = member.as_str().into();
            to_room(conn, &room, reference, |reply| Command::Kick {
                by,
                target,
                reply,
            })
            .await
        }
        ClientMsg::State {
            room,
            state,
            reference,
        } => match state_size_ok(app, Some(&state)) {
            Err((code, message)) => Step::Now(error(reference.as_ref(), code, message)),
            Ok(()) => {
                to_room(conn, &room, reference, |reply| Command::State {
                    conn: c(),
                    state,
                    reply,
                })
                .await
            }
        },
        ClientMsg::Sync { room, reference } => {
            to_room(conn, &room, reference, |reply| Command::Sync {
                conn: c(),
                reply,
            })
            .await
        }
    }
}

/// Sends a command to a room this socket is in, without waiting for its answer.
async fn to_room(
    conn: &Conn,
    room: &str,
    reference: Option<Ref>,
    make: impl FnOnce(crate::room::handle::Reply<()>) -> Command,
) -> Step {
    let Some(h) = conn.room(room) else {
        let message = format!("this socket is not in room {room:?}");
        return Step::Now(error(reference.as_ref(), ErrorCode::NotMember, message));
    };
    match h.request(make).await {
        Ok(answer) => Step::Later(Later { reference, answer }),
        Err(e) => Step::Now(reply(reference.as_ref(), Err(e))),
    }
}

/// Runs a `join` or `watch` to the end; returns its reply.
pub(super) async fn subscribe(app: &App, conn: &Arc<Conn>, s: Subscribe) -> Frame {
    let r = subscribe_to(app, conn, &s.room, s.join, s.state).await;
    match r {
        Ok(()) => ack(s.reference.as_ref()),
        Err(Refusal(code, message, retry)) => {
            error_after(s.reference.as_ref(), code, message, retry)
        }
    }
}

type Outcome = Result<(), (ErrorCode, String)>;

/// A refused `join`/`watch`: code, message, and `retryAfter` seconds for rate limits.
struct Refusal(ErrorCode, String, Option<f64>);

impl From<(ErrorCode, String)> for Refusal {
    fn from((code, message): (ErrorCode, String)) -> Self {
        Self(code, message, None)
    }
}

impl From<crate::limits::Refused> for Refusal {
    fn from(r: crate::limits::Refused) -> Self {
        let code = match r.limit {
            crate::limits::Limit::MaxRooms => ErrorCode::ServerFull,
            _ => ErrorCode::RateLimited,
        };
        // Rounded up to a tenth of a second, so a client waiting exactly that long succeeds.
        let retry = r
            .retry_after
            .map(|d| (d.as_secs_f64() * 10.0).ceil() / 10.0);
        Self(code, r.message, retry)
    }
}

fn room_err(e: RoomError) -> (ErrorCode, String) {
    (e.code(), e.to_string())
}

fn state_size_ok(app: &App, state: Option<&Value>) -> Outcome {
    let Some(state) = state else { return Ok(()) };
    let size = serde_json::to_vec(state)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    let max = app.settings.max_state_bytes;
    if size > max {
        return Err((
            ErrorCode::StateTooLarge,
            format!("state is {size} bytes; the limit is {max}"),
        ));
    }
    Ok(())
}

/// `join` (member) or `watch` (subscriber only).
async fn subscribe_to(
    app: &App,
    conn: &Arc<Conn>,
    room: &str,
    join: bool,
    state: Option<Value>,
) -> Result<(), Refusal> {
    if !valid_room_name(room) {
        return Err(Refusal(
            ErrorCode::InvalidRoom,
            "room names are 1-128 characters of [A-Za-z0-9_.:@-]".into(),
            None,
        ));
    }
    super::access::check(conn.identity(), room, join)?;
    if conn.room(room).is_none() && conn.room_count() >= app.settings.max_rooms_per_socket {
        return Err(Refusal(
            ErrorCode::TooManyRooms,
            format!(
                "a socket may be in at most {} rooms",
                app.settings.max_rooms_per_socket
            ),
            None,
        ));
    }
    let id = RoomId::from(room);
    if RESERVED_PREFIXES.iter().any(|p| room.starts_with(p)) {
        // Façade rooms are created by their REST APIs only: never spawn one here.
        let not_found = || {
            (
                ErrorCode::RoomNotFound,
                format!("room {room:?} does not exist"),
            )
        };
        let h = app.registry.find(room).ok_or_else(not_found)?;
        let r = if join {
            h.join(conn.clone(), state).await
        } else {
            h.watch(conn.clone()).await
        };
        return r.map_err(|e| {
            if e == RoomError::Closed {
                not_found().into()
            } else {
                room_err(e).into()
            }
        });
    }
    if app.registry.get(room).is_none() {
        // Creating a native room: the global cap and this token's and address's creation rates.
        app.limits
            .native_room(conn.member().as_str(), conn.peer(), app.registry.len())?;
    }
    let settings = &app.settings;
    let spec = || RoomSpec {
        private: serde_json::Value::Null,
        kind: RoomKind::Native,
        max_members: settings.max_members_per_room,
        linger: Some(settings.room_idle),
        attrs: Default::default(),
    };
    let r = if join {
        app.registry
            .with_room(&id, spec, |h| {
                let (c, st) = (conn.clone(), state.clone());
                async move { h.join(c, st).await }
            })
            .await
    } else {
        app.registry
            .with_room(&id, spec, |h| {
                let c = conn.clone();
                async move { h.watch(c).await }
            })
            .await
    };
    r.map(|_| ()).map_err(|e| room_err(e).into())
}

/// Parses one text frame: the request, or the `error` reply that refuses it (`bad_json`,
/// `unknown_type` or `bad_request`). Pure; public for the fuzz target `ws_message`.
pub fn parse_request(text: &str) -> Result<ClientMsg, Frame> {
    ClientMsg::parse(text).map_err(|e| parse_error(text, &e))
}

/// Classifies a request that did not parse: not JSON, unknown `type`, or a bad field.
fn parse_error(text: &str, e: &serde_json::Error) -> Frame {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return error(None, ErrorCode::BadJson, format!("not JSON: {e}"));
    };
    let reference = Ref::from_text(text);
    let reference = reference.as_ref();
    match v.get("type").and_then(Value::as_str) {
        None => error(
            reference,
            ErrorCode::BadRequest,
            "a request is a JSON object with a string `type`",
        ),
        Some(t)
            if !matches!(
                t,
                "join" | "watch" | "leave" | "kick" | "state" | "sync" | "ping"
            ) =>
        {
            error(
                reference,
                ErrorCode::UnknownType,
                format!("unknown type {t:?}"),
            )
        }
        Some(_) => error(reference, ErrorCode::BadRequest, e.to_string()),
    }
}
