//! The names of the bridge's metrics (reported through the `metrics` facade; the binary
//! exports them in Prometheus text at `GET /metrics`).

/// Counter: changes received from the feed.
pub const EVENTS_IN: &str = "chatstore_bridge_events_in_total";
/// Counter: `events` emissions sent to a room.
pub const EVENTS_OUT: &str = "chatstore_bridge_events_out_total";
/// Counter: sockets an `events` emission could not be queued for (the socket closed, or its
/// buffer of packets waiting to be written was full).
pub const EMIT_FAILURES: &str = "chatstore_bridge_emit_failures_total";
/// Counter: changes whose record the store could not read (after trying again for 30 s while
/// it was unavailable); each was sent as `chat:list`, which makes the client reload.
pub const UNREAD_CHANGES: &str = "chatstore_bridge_unread_changes_total";
/// Gauge: sockets connected.
pub const SOCKETS: &str = "chatstore_bridge_connected_sockets";
/// Gauge: seconds between the newest change and its arrival at the bridge.
pub const FEED_LAG: &str = "chatstore_bridge_feed_lag_seconds";
/// Gauge: times the feed's source reconnected (each followed by a catch-up).
pub const FEED_RECONNECTS: &str = "chatstore_bridge_feed_reconnects";
/// Gauge: 1 while the feed's source is connected.
pub const FEED_CONNECTED: &str = "chatstore_bridge_feed_connected";
/// Counter: envelopes published into Open WebUI's Redis manager channel.
pub const REDIS_PUBLISHED: &str = "chatstore_bridge_redis_published_total";
/// Counter: envelopes dropped because Redis was unreachable for too long (queue full).
pub const REDIS_DROPPED: &str = "chatstore_bridge_redis_dropped_total";
/// Counter: emits of other servers of the cluster (Open WebUI's replicas, other bridges),
/// heard on the Redis channel and emitted to this bridge's sockets in their room (an emit
/// that asked for an ack: once answered).
pub const REDIS_DELIVERED: &str = "chatstore_bridge_redis_delivered_total";
/// Gauge: 1 while the bridge is subscribed to the Redis channel.
pub const REDIS_SUBSCRIBED: &str = "chatstore_bridge_redis_subscribed";
/// Gauge: 1 while the connection to Redis is up.
pub const REDIS_CONNECTED: &str = "chatstore_bridge_redis_connected";
/// Counter: users' activity (`last_active_at`) written on a socket's `heartbeat`.
pub const ACTIVITY_WRITES: &str = "chatstore_bridge_activity_writes_total";
/// Counter: activity writes the store refused or could not take (tried again at the user's
/// next heartbeat).
pub const ACTIVITY_FAILURES: &str = "chatstore_bridge_activity_failures_total";
