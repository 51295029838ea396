//! The public side of a room: a cheap, cloneable handle around a bounded command sender.
//!
//! Every method sends one [`Command`] and awaits its reply. A closed mailbox or a dropped reply
//! becomes [`RoomError::Closed`], never a panic; callers that resolved the handle through the
//! registry retry once on `Closed` (the room was exiting as they called). A caller that pipelines
//! (a socket with several requests in flight) uses [`RoomHandle::request`], which waits for
//! mailbox space only and hands back the [`Answer`] to await later.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

use super::{Added, Removed, RoomError, Snapshot};
use crate::conn::Conn;
use crate::ids::{ConnId, MemberId, RoomId};
use crate::protocol::{LeaveReason, MemberKind};

/// The reply channel of a command: every command but `Detach` and `Custom` carries one in its
/// `reply` field, answered once the room has applied it (or `Closed` if it never will).
pub type Reply<T> = oneshot::Sender<Result<T, RoomError>>;

/// A member added through a REST API.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewMember {
    /// The façade's participant or player id.
    pub id: MemberId,
    /// Player, phone or web participant.
    pub kind: MemberKind,
    /// Display name.
    pub name: Option<String>,
    /// Façade metadata.
    pub meta: Value,
}

/// A façade's custom change, applied atomically inside the actor. It may read and change the
/// room's attributes and members through [`super::ops::Ops`], which versions and broadcasts
/// every change it makes. The closure carries its own typed reply channel (see
/// [`RoomHandle::custom`]): a room that exits before running it drops it, and the caller sees
/// [`RoomError::Closed`].
pub type Custom = Box<dyn FnOnce(&mut super::ops::Ops<'_>) + Send>;

/// Everything a room actor can be asked to do.
pub enum Command {
    /// A socket joins as its identity's member.
    Join {
        /// The socket.
        conn: Arc<Conn>,
        /// Initial live state.
        state: Option<Value>,
        /// Answered once the panel is queued, or with the refusal (`Banned`, `Full`, ...).
        reply: Reply<()>,
    },
    /// REST adds (or updates) members, atomically: one `joined` event.
    AddMembers {
        /// Added, or updated in place when already members (name, kind, metadata).
        members: Vec<NewMember>,
        /// Who was added, who updated in place, and the event's version.
        reply: Reply<Added>,
    },
    /// A socket subscribes without membership.
    Watch {
        /// The socket.
        conn: Arc<Conn>,
        /// Answered once the panel is queued (`Forbidden`: an outsider of a lobby).
        reply: Reply<()>,
    },
    /// A socket leaves (its member leaves, or it stops watching).
    Leave {
        /// The socket.
        conn: Arc<Conn>,
        /// `NotMember` if the socket was not subscribed.
        reply: Reply<()>,
    },
    /// Members are removed by id, in one event.
    Remove {
        /// The members to remove (duplicates and non-members are skipped unless `atomic`).
        ids: Vec<MemberId>,
        /// The `left` event's reason.
        reason: LeaveReason,
        /// Who did it (kick by a member).
        by: Option<MemberId>,
        /// All-or-nothing: any non-member fails the batch with `NotMembers`.
        atomic: bool,
        /// Who was removed, and the version of their `left` event.
        reply: Reply<Removed>,
    },
    /// A member kicks another (host only), or an operator kicks (`by: None`).
    Kick {
        /// The kicker; `None` for an operator.
        by: Option<MemberId>,
        /// The target.
        target: MemberId,
        /// `NotHost`, `NotMember` or `SelfKick` when the kick is refused.
        reply: Reply<()>,
    },
    /// A member's live state.
    State {
        /// The connection whose member changes its state.
        conn: Arc<Conn>,
        /// The new state, whole.
        state: Value,
        /// `NotMember` if the socket has not joined as a member.
        reply: Reply<()>,
    },
    /// Push a fresh panel to a subscribed socket.
    Sync {
        /// The socket.
        conn: Arc<Conn>,
        /// `NotMember` if the socket is not subscribed.
        reply: Reply<()>,
    },
    /// A socket closed (or missed its heartbeat).
    Detach {
        /// The socket.
        conn: ConnId,
        /// True for a heartbeat timeout: the member leaves at once with `timeout`.
        timed_out: bool,
    },
    /// Which of these ids are members (a façade's check before it adds or removes players).
    AreMembers {
        /// The ids.
        ids: Vec<MemberId>,
        /// One answer per id, in order.
        reply: Reply<Vec<bool>>,
    },
    /// A snapshot for REST.
    Snapshot {
        /// The room as it is when the command is handled.
        reply: Reply<Snapshot>,
    },
    /// A façade's atomic custom change; it answers its caller itself.
    Custom(Custom),
    /// Stage the room's record in the store if it changed since the last one (the periodic
    /// presence checkpoint); with `stop`, stage it whatever and exit keeping it (the graceful
    /// restart: the next process resumes the room).
    Checkpoint {
        /// Exit after staging, keeping the record.
        stop: bool,
        /// Stage the record even if nothing changed (a cluster node rewriting its records after
        /// Redis lost them).
        force: bool,
        /// Answered once the record is staged (`None`: nobody waits).
        reply: Option<Reply<()>>,
    },
    /// Close the room: subscribers get `closed`, the actor exits.
    Close {
        /// Why (`ended`, `deleted`, ...).
        reason: String,
        /// Answered once `closed` is queued to every subscriber.
        reply: Reply<()>,
    },
}

/// A room's answer to a command sent with [`RoomHandle::request`]: a future of the reply.
#[derive(Debug)]
pub struct Answer<T>(oneshot::Receiver<Result<T, RoomError>>);

impl<T> Answer<T> {
    /// The reply if the room has answered already, without waiting.
    pub fn now(&mut self) -> Option<Result<T, RoomError>> {
        match self.0.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(RoomError::Closed)),
        }
    }
}

impl<T> Future for Answer<T> {
    type Output = Result<T, RoomError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(RoomError::Closed)))
    }
}

/// A cloneable handle to one room actor.
#[derive(Clone, Debug)]
pub struct RoomHandle {
    id: RoomId,
    incarnation: u64,
    tx: mpsc::Sender<Command>,
}

impl RoomHandle {
    pub(crate) fn new(id: RoomId, incarnation: u64, tx: mpsc::Sender<Command>) -> Self {
        Self {
            id,
            incarnation,
            tx,
        }
    }

    /// Passes a command on as it is (a cluster front handing commands to its local actor);
    /// gives it back if the room has exited.
    pub(crate) async fn send(&self, cmd: Command) -> Result<(), Command> {
        self.tx.send(cmd).await.map_err(|e| e.0)
    }

    /// Resolves once the room's actor has exited (its mailbox is closed).
    pub(crate) async fn closed(&self) {
        self.tx.closed().await
    }

    /// The room's id.
    pub fn id(&self) -> &RoomId {
        &self.id
    }

    /// Identifies this actor among every actor that ever served the same room id.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Sends a command, waiting for mailbox space but not for the room's work: the reply is the
    /// returned [`Answer`]. Commands sent through one handle are handled in the order sent.
    pub async fn request<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<Answer<T>, RoomError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| RoomError::Closed)?;
        Ok(Answer(rx))
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, RoomError> {
        self.request(make).await?.await
    }

    /// A socket joins as its member.
    pub async fn join(&self, conn: Arc<Conn>, state: Option<Value>) -> Result<(), RoomError> {
        self.call(|reply| Command::Join { conn, state, reply })
            .await
    }

    /// REST adds members (one event).
    pub async fn add_members(&self, members: Vec<NewMember>) -> Result<Added, RoomError> {
        self.call(|reply| Command::AddMembers { members, reply })
            .await
    }

    /// A socket watches.
    pub async fn watch(&self, conn: Arc<Conn>) -> Result<(), RoomError> {
        self.call(|reply| Command::Watch { conn, reply }).await
    }

    /// A socket leaves.
    pub async fn leave(&self, conn: Arc<Conn>) -> Result<(), RoomError> {
        self.call(|reply| Command::Leave { conn, reply }).await
    }

    /// Removes members by id in one event.
    pub async fn remove(
        &self,
        ids: Vec<MemberId>,
        reason: LeaveReason,
        by: Option<MemberId>,
        atomic: bool,
    ) -> Result<Removed, RoomError> {
        self.call(|reply| Command::Remove {
            ids,
            reason,
            by,
            atomic,
            reply,
        })
        .await
    }

    /// Kicks `target`; `by: None` is an operator.
    pub async fn kick(&self, by: Option<MemberId>, target: MemberId) -> Result<(), RoomError> {
        self.call(|reply| Command::Kick { by, target, reply }).await
    }

    /// Sets a socket member's state.
    pub async fn state(&self, conn: Arc<Conn>, state: Value) -> Result<(), RoomError> {
        self.call(|reply| Command::State { conn, state, reply })
            .await
    }

    /// Pushes a fresh panel to a socket.
    pub async fn sync(&self, conn: Arc<Conn>) -> Result<(), RoomError> {
        self.call(|reply| Command::Sync { conn, reply }).await
    }

    /// Reports a closed socket. Waits for mailbox space, never for the room's work.
    pub async fn detach(&self, conn: ConnId, timed_out: bool) {
        // A closed room has already forgotten every socket: nothing to tell it.
        let _ = self.tx.send(Command::Detach { conn, timed_out }).await;
    }

    /// Which of `ids` are members, in order.
    pub async fn are_members(&self, ids: Vec<MemberId>) -> Result<Vec<bool>, RoomError> {
        self.call(|reply| Command::AreMembers { ids, reply }).await
    }

    /// A snapshot.
    pub async fn snapshot(&self) -> Result<Snapshot, RoomError> {
        self.call(|reply| Command::Snapshot { reply }).await
    }

    /// Runs a façade's change atomically in the actor (no other command between its checks and
    /// its changes) and returns what it returned. [`RoomError::Closed`] if the room exited first.
    pub async fn custom<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut super::ops::Ops<'_>) -> T + Send + 'static,
    ) -> Result<T, RoomError> {
        self.call(|reply: Reply<T>| {
            Command::Custom(Box::new(move |ops| {
                let out = op(ops);
                // Staged before the reply: the caller's commit barrier covers the change.
                ops.commit();
                // The caller may have given up waiting; the change is made either way.
                let _ = reply.send(Ok(out));
            }))
        })
        .await
    }

    /// Asks for a presence checkpoint without waiting (a full mailbox skips this round: the
    /// room is busy and the next round asks again). See [`Command::Checkpoint`].
    pub fn try_checkpoint(&self) {
        let _ = self.tx.try_send(Command::Checkpoint {
            stop: false,
            force: false,
            reply: None,
        });
    }

    /// Stages the record even if unchanged, without waiting (a full mailbox skips it).
    pub fn force_checkpoint(&self) {
        let _ = self.tx.try_send(Command::Checkpoint {
            stop: false,
            force: true,
            reply: None,
        });
    }

    /// Stages the room's record and stops the actor, keeping the record (graceful restart).
    pub async fn checkpoint_and_stop(&self) -> Result<(), RoomError> {
        self.call(|reply| Command::Checkpoint {
            stop: true,
            force: true,
            reply: Some(reply),
        })
        .await
    }

    /// Closes the room.
    pub async fn close(&self, reason: impl Into<String>) -> Result<(), RoomError> {
        let reason = reason.into();
        self.call(|reply| Command::Close { reason, reply }).await
    }
}

/// Attributes helper for façades: a JSON object.
pub type Attrs = Map<String, Value>;
