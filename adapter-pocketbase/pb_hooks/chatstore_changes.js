// A module of pb_hooks/chatstore.pb.js (PocketBase loads only *.pb.js files as hooks; handlers
// `require` this one, since each runs in its own VM).
// Change records for the adapter's change feed. PocketBase's realtime API does not replay what
// a disconnected subscriber missed, and a deleted record cannot be found by its `updated_at`:
// every deletion of a user, chat, message or file, and every change of a chat's tag set (which
// keeps the chat's `updated_at`), is recorded in `<prefix>owui_changes` inside the deleting or
// updating transaction, so the feed can report it after a reconnect. Records older than 7 days
// are pruned now and then.
module.exports.record = (app, record, kind, fields) => {
  const m = /^([a-z0-9_]*)owui_(users|chats|messages|files)$/.exec(record.collection().name);
  if (!m) return;
  const prefix = m[1];
  let changes;
  try {
    changes = app.findCollectionByNameOrId(prefix + "owui_changes");
  } catch (_) {
    return; // a schema older than the change feed: nothing to record into
  }
  const now = Date.now();
  const event = { kind: kind, fields: fields, at: now, key: $security.randomString(32) };
  switch (m[2]) {
    case "users":
      event.group = "users";
      event.user_id = record.id;
      break;
    case "chats":
      event.group = "chats";
      event.user_id = record.getString("user_id");
      event.chat_id = record.id;
      break;
    case "files":
      event.group = "files";
      event.user_id = record.getString("user_id");
      event.file_id = record.id;
      break;
    case "messages": {
      event.group = "chats";
      event.chat_id = record.getString("chat_id");
      event.message_id = record.getString("msg_id");
      try {
        const chat = app.findRecordById(prefix + "owui_chats", event.chat_id);
        event.user_id = chat.getString("user_id");
      } catch (_) {
        return; // the chat is gone too: its own deletion is recorded
      }
      break;
    }
  }
  const rec = new Record(changes);
  rec.set("id", event.key);
  rec.set("user_id", event.user_id);
  rec.set("at", now);
  rec.set("event", event);
  app.save(rec);
  if (Math.random() < 0.01) {
    app.db()
      .newQuery("DELETE FROM `" + changes.name + "` WHERE at < {:t}")
      .bind({ t: now - 7 * 24 * 3600 * 1000 })
      .execute();
  }
};
