//! The Socket.IO side: who may connect, the rooms, and the task that turns the change feed
//! into `events` emissions.

use std::time::Duration;

use chatstore_core::changes::{ChangeFilter, ChangeStream, subscribe};
use chatstore_core::{ChangeEvent, ErrorKind, ModelGroup};
use futures::StreamExt;
use serde::Deserialize;
use socketioxide::extract::{AckSender, Data, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SocketIo, TransportType};

use crate::auth::{Refusal, check_session, check_user, verify};
use crate::envelope::envelopes;
use crate::redis::RedisPublisher;
use crate::{BridgeState, Cluster, SOCKET_PATH, metric};

/// Packets a socket may have waiting to be written before an emit to it fails (socketioxide's
/// default is 128): a burst of changes to one user (a chat imported with its messages) must
/// not overflow the tab of a client on a slow link.
const SOCKET_BUFFER: usize = 2048;

/// Chat joins of one socket whose owner check may read the store at once. socketioxide runs
/// every event on a task of its own, so a client sending joins without waiting for their
/// answers started one store read per join; a join beyond these is answered
/// `{ok: false, error}` at once instead.
pub(crate) const JOINS_IN_FLIGHT: usize = 4;

/// What a connected socket carries: whose it is, the token to check again, and the permits of
/// its chat joins in flight (shared by every clone of the session).
#[derive(Debug, Clone)]
struct Session {
    user_id: String,
    token: String,
    joins: std::sync::Arc<tokio::sync::Semaphore>,
}

#[derive(Debug, Deserialize)]
struct Auth {
    token: Option<String>,
}

/// `events:channel` from the client: `data.type` is `typing` or `last_read_at`.
#[derive(Debug, Deserialize)]
struct ChannelEvent {
    channel_id: String,
    #[serde(default)]
    message_id: Option<serde_json::Value>,
    data: serde_json::Value,
}

/// The user as a channel's typing indicator shows it (Open WebUI's `UserNameResponse`),
/// read once per socket.
#[derive(Debug, Clone)]
struct Typist(serde_json::Value);

/// `events:chat` from the client.
#[derive(Debug, Deserialize)]
struct ChatRoom {
    #[serde(rename = "type")]
    kind: String,
    chat_id: String,
}

/// The Socket.IO layer at [`SOCKET_PATH`], with the feed task started.
pub(crate) fn layer(state: BridgeState) -> SocketIoLayer {
    let (layer, io) = SocketIo::builder()
        .req_path(SOCKET_PATH)
        .ping_interval(Duration::from_secs(25))
        .ping_timeout(Duration::from_secs(20))
        .transports([TransportType::Polling, TransportType::Websocket])
        .max_buffer_size(SOCKET_BUFFER)
        .with_state(state.clone())
        .build_layer();
    io.ns("/", on_connect.with(authenticate));
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let _entered = runtime.enter();
            let publisher = state.config().redis.clone().map(|target| {
                let publisher = RedisPublisher::start(target.clone());
                crate::redis::subscribe(
                    target,
                    io.clone(),
                    publisher.clone(),
                    state.redis_subscribed_flag(),
                );
                publisher
            });
            state.set_cluster(Cluster {
                io: io.clone(),
                publisher,
            });
            // Subscribed before the router is handed out, so no change made after that is
            // missed (the feed task may start later).
            let changes = state
                .store()
                .changes()
                .map(|feed| subscribe(feed, ChangeFilter::all()));
            runtime.spawn(follow(io, state, changes));
        }
        Err(_) => tracing::error!("bridge: no Tokio runtime; changes will not be sent"),
    }
    layer
}

async fn session_check(state: &BridgeState, session: &Session) -> Result<(), Refusal> {
    let claims = verify(state.config().secret_key.as_deref(), &session.token)?;
    if claims.id != session.user_id {
        return Err(Refusal::BadToken);
    }
    check_session(state.store(), &claims).await
}

async fn authenticate(
    socket: SocketRef,
    TryData(auth): TryData<Auth>,
    State(state): State<BridgeState>,
) -> Result<(), Refusal> {
    let token = auth
        .ok()
        .and_then(|a| a.token)
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::NoToken)?;
    let claims = verify(state.config().secret_key.as_deref(), &token)?;
    check_session(state.store(), &claims).await?;
    // Here, before the client hears that it is connected: the connect handler runs in a task
    // of its own after that, and a room join sent at once (or a change to the user) would find
    // no handler and no room yet, and be lost.
    let user_room = format!("user:{}", claims.id);
    socket.extensions.insert(Session {
        user_id: claims.id.clone(),
        token,
        joins: std::sync::Arc::new(tokio::sync::Semaphore::new(JOINS_IN_FLIGHT)),
    });
    socket.on("events:chat", on_chat_room);
    socket.on("heartbeat", on_heartbeat);
    socket.on("join-channels", on_join_channels);
    socket.on("events:channel", on_channel_event);
    // Not yet connected here (socketioxide marks it so after the middleware); a refusal
    // after this point leaves no room behind, as socketioxide removes the socket's rooms.
    socket.join(user_room);
    // Every socket is in a room of its own id, as in python-socketio, where Open WebUI's
    // servers emit to one socket (`to=sid`) through the cluster.
    socket.join(socket.id.to_string());
    Ok(())
}

/// Joins `room` unless the socket has closed meanwhile (the join waited for the store): a join
/// after its close would re-create the room entry the close removed, and nothing would remove
/// it again.
fn join_while_connected(socket: &SocketRef, room: String) {
    socket.join(room.clone());
    if !socket.connected() {
        socket.leave(room);
    }
}

async fn on_connect(socket: SocketRef, State(state): State<BridgeState>) {
    let Some(session) = socket.extensions.get::<Session>() else {
        let _ = socket.disconnect();
        return;
    };
    // Counted once and uncounted once, whether the socket closes before the disconnect
    // handler is registered (it then never runs), while, or after.
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    state.socket_delta(1);
    let (uncount, on_close) = (state.clone(), counted.clone());
    socket.on_disconnect(async move || {
        if on_close.swap(false, std::sync::atomic::Ordering::SeqCst) {
            uncount.socket_delta(-1);
        }
    });
    if !socket.connected() {
        if counted.swap(false, std::sync::atomic::Ordering::SeqCst) {
            state.socket_delta(-1);
        }
        socket.leave_all();
        return;
    }
    // Once the client heard that it is connected, as Open WebUI joins them on the `user-join`
    // that follows the connect: the handshake does not wait for the channel reads (on
    // PocketBase, 1,000 sockets connected 2.7 s slower with them in it).
    join_channels(&socket, &state, &session.user_id).await;
    let every = state.config().recheck_interval.clamp(
        std::time::Duration::from_millis(10),
        chatstore_core::config::LONGEST_WAIT,
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            if !socket.connected() {
                return;
            }
            match session_check(&state, &session).await {
                Ok(()) => {}
                // The store could not answer (restarting, unreachable): checked again at the
                // next tick. Disconnecting would drop every socket whose check fell in the
                // outage, and send them all back at once to a store just recovering.
                Err(Refusal::Store) => {}
                Err(_) => {
                    tracing::info!(user = %session.user_id, "bridge: session no longer valid; disconnecting");
                    let _ = socket.disconnect();
                    return;
                }
            }
        }
    });
}

/// Joins or leaves `chat:{id}`; acknowledges `{ok}` (and `error` when refused for a reason
/// the client can act on) when the client asked for an ack.
async fn on_chat_room(
    socket: SocketRef,
    Data(request): Data<ChatRoom>,
    State(state): State<BridgeState>,
    ack: AckSender,
) {
    let Some(session) = socket.extensions.get::<Session>() else {
        return;
    };
    let reply = match request.kind.as_str() {
        "join" => join_chat(&socket, &state, &session, &request.chat_id).await,
        "leave" => {
            socket.leave(format!("chat:{}", request.chat_id));
            serde_json::json!({ "ok": true })
        }
        _ => refused("type must be \"join\" or \"leave\""),
    };
    let _ = ack.send(&reply);
}

/// `heartbeat` from the web client (its payload is ignored): records the user's activity
/// (see [`crate::activity`]), then acknowledges, with no data, when the client asked for an
/// ack.
async fn on_heartbeat(socket: SocketRef, State(state): State<BridgeState>, ack: AckSender) {
    let Some(session) = socket.extensions.get::<Session>() else {
        return;
    };
    crate::activity::heartbeat(&state, &session.user_id).await;
    let _ = ack.send(&());
}

/// Joins the rooms `channel:{id}` of every channel the user sees (while the socket is still
/// connected), as with Open WebUI's server: its replicas emit a channel's messages and typing
/// there. A store without Open WebUI's other tables (`Unsupported`) has no channels; a failed
/// read is logged and joins none (the client asks again with `join-channels`).
async fn join_channels(socket: &SocketRef, state: &BridgeState, user_id: &str) {
    let channels = match state.store().workspace() {
        Ok(workspace) => workspace.channels().for_user(user_id).await,
        Err(e) => Err(e),
    };
    match channels {
        Ok(channels) => {
            for channel in channels {
                join_while_connected(socket, format!("channel:{}", channel.id));
            }
        }
        Err(e) if e.kind() == ErrorKind::Unsupported => {}
        Err(e) => {
            tracing::warn!(user = user_id, error = %e, "bridge: cannot read a user's channels")
        }
    }
}

/// `join-channels` from the client (sent after it created or joined a channel): joins the
/// rooms of the channels the user sees now. The payload's token is not needed: the socket's
/// session was checked when it connected, and is checked again while it stays.
async fn on_join_channels(socket: SocketRef, State(state): State<BridgeState>) {
    let Some(session) = socket.extensions.get::<Session>() else {
        return;
    };
    let Ok(_permit) = session.joins.try_acquire() else {
        return;
    };
    join_channels(&socket, &state, &session.user_id).await;
}

/// `events:channel` from a socket in that channel's room: `typing` goes to the room (and,
/// with Redis, to the browsers of the other servers) with the user who types, as Open
/// WebUI's server sends it; `last_read_at` records that the user read the channel up to now.
/// Anything else, or a socket outside the room, is left.
async fn on_channel_event(
    socket: SocketRef,
    Data(event): Data<ChannelEvent>,
    State(state): State<BridgeState>,
) {
    let Some(session) = socket.extensions.get::<Session>() else {
        return;
    };
    let room = format!("channel:{}", event.channel_id);
    if !socket.rooms().iter().any(|r| *r == room) {
        return;
    }
    // At most a few store calls per socket at once, as for chat joins: a flood waits for no
    // one and reads nothing.
    let Ok(_permit) = session.joins.try_acquire() else {
        return;
    };
    match event.data["type"].as_str() {
        Some("typing") => {
            let Some(typist) = typist(&socket, &state, &session.user_id).await else {
                return;
            };
            let payload = serde_json::json!({
                "channel_id": event.channel_id,
                "message_id": event.message_id,
                "data": event.data,
                "user": typist,
            });
            let _ = state.emit(&room, "events:channel", &payload).await;
        }
        Some("last_read_at") => {
            let marked = match state.store().workspace() {
                Ok(workspace) => {
                    workspace
                        .channels()
                        .mark_read(&event.channel_id, &session.user_id)
                        .await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = marked {
                tracing::warn!(user = %session.user_id, error = %e, "bridge: cannot record that a channel was read");
            }
        }
        _ => {}
    }
}

/// The socket's user as a typing indicator shows it, read from the store the first time.
async fn typist(
    socket: &SocketRef,
    state: &BridgeState,
    user_id: &str,
) -> Option<serde_json::Value> {
    if let Some(Typist(user)) = socket.extensions.get::<Typist>() {
        return Some(user);
    }
    let user = state.store().users.get(user_id).await.ok()?;
    let shown = serde_json::json!({
        "id": user.id,
        "name": user.name,
        "role": user.role,
        "profile_image_url": user.profile_image_url,
    });
    socket.extensions.insert(Typist(shown.clone()));
    Some(shown)
}

fn refused(error: &str) -> serde_json::Value {
    serde_json::json!({ "ok": false, "error": error })
}

/// Joins `chat:{chat_id}` when the chat is the session user's: the id is checked first, and
/// the store is read only while the socket has fewer than [`JOINS_IN_FLIGHT`] joins waiting
/// for it.
async fn join_chat(
    socket: &SocketRef,
    state: &BridgeState,
    session: &Session,
    chat_id: &str,
) -> serde_json::Value {
    if let Err(e) = chatstore_core::validate::id("chat_id", chat_id) {
        return refused(&e.to_string());
    }
    let Ok(_permit) = session.joins.try_acquire() else {
        return refused(&format!(
            "more than {JOINS_IN_FLIGHT} chat joins at once on this socket; wait for their answers"
        ));
    };
    match state.store().chats.get(chat_id).await {
        Ok(chat) if chat.user_id == session.user_id => {
            join_while_connected(socket, format!("chat:{chat_id}"));
            serde_json::json!({ "ok": true })
        }
        Ok(_) => serde_json::json!({ "ok": false }),
        Err(e) => {
            if e.kind() != ErrorKind::NotFound {
                tracing::warn!(error = %e, "bridge: cannot check a chat's owner");
            }
            serde_json::json!({ "ok": false })
        }
    }
}

/// Follows the store's change feed for as long as the server runs.
async fn follow(io: SocketIo, state: BridgeState, changes: Option<ChangeStream>) {
    let (Some(feed), Some(changes)) = (state.store().changes(), changes) else {
        tracing::warn!(
            backend = state.store().backend_name(),
            "bridge: the store has no change feed; no events will be sent"
        );
        return;
    };
    let hub_feed = feed.clone();
    let reporter = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let status = hub_feed.hub().status();
            metrics::gauge!(metric::FEED_RECONNECTS).set(status.reconnects as f64);
            metrics::gauge!(metric::FEED_CONNECTED).set(f64::from(u8::from(status.connected)));
        }
    });
    let store = state.store().clone();
    let redis = state
        .cluster()
        .and_then(|c| c.publisher.clone())
        .filter(|_| state.config().publish_changes);
    let concurrency = state.config().concurrency.max(1);
    let mut translated = changes
        .map(|event| {
            let store = store.clone();
            async move {
                metrics::counter!(metric::EVENTS_IN).increment(1);
                let lag = chatstore_core::changes::now_ms().saturating_sub(event.at);
                metrics::gauge!(metric::FEED_LAG).set(lag.max(0) as f64 / 1000.0);
                let out = envelopes(&store, &event).await;
                (event, out)
            }
        })
        .buffered(concurrency);
    while let Some((event, out)) = translated.next().await {
        for envelope in out {
            if let Some(redis) = &redis {
                redis.publish(&envelope.room, &envelope.payload);
            }
            match io.to(envelope.room).emit("events", &envelope.payload).await {
                Ok(()) => metrics::counter!(metric::EVENTS_OUT).increment(1),
                Err(e) => {
                    let failed = match &e {
                        socketioxide::BroadcastError::Socket(sockets) => sockets.len(),
                        _ => 1,
                    };
                    metrics::counter!(metric::EMIT_FAILURES).increment(failed as u64);
                    tracing::warn!(error = %e, "bridge: an envelope did not reach every socket of its room");
                }
            }
        }
        if event.group == ModelGroup::Users {
            recheck_user(&io, &state, &event).await;
        }
    }
    reporter.abort();
}

/// A user changed (role, deletion, name): checks that user's sockets again at once, and
/// forgets the name their typing indicators showed.
async fn recheck_user(io: &SocketIo, state: &BridgeState, event: &ChangeEvent) {
    for socket in io.to(format!("user:{}", event.user_id)).sockets() {
        socket.extensions.remove::<Typist>();
    }
    // A store that cannot answer keeps the sockets: their own checks run again shortly.
    if matches!(
        check_user(state.store(), &event.user_id).await,
        Ok(()) | Err(Refusal::Store)
    ) {
        return;
    }
    for socket in io.to(format!("user:{}", event.user_id)).sockets() {
        let _ = socket.disconnect();
    }
}
