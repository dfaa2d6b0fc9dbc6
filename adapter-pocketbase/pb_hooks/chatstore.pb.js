/// <reference path="../pb_data/types.d.ts" />
// chatstore routes for the PocketBase adapter (crate chatstore-pocketbase).
// Start PocketBase with `--hooksDir adapter-pocketbase/pb_hooks` (scripts/services.sh does).
// All routes are superuser only. PocketBase runs each handler in its own JS VM, so every
// handler is self-contained. Collection names are checked against ^[A-Za-z0-9_]+$ and must
// exist; every value reaches SQL as a bound parameter.

// GET /api/chatstore/info: the routes' version (the adapter refuses to start on a mismatch).
routerAdd("GET", "/api/chatstore/info", (e) => {
  // The routes need their modules too: a server given this file alone answers here with an
  // error, not a version, so the adapter refuses it at start-up instead of failing every
  // write later.
  require(`${__hooks}/chatstore_tags.js`);
  require(`${__hooks}/chatstore_changes.js`);
  return e.json(200, { version: 8 });
}, $apis.requireSuperuserAuth());

// POST /api/chatstore/tx {"ops": [...]}: runs record operations in one transaction, all or
// nothing. Failures answer 404 (missing record), 409 (taken id or unique value), 412 (a chat
// changed since the caller read it: read again and retry) or 400.
routerAdd("POST", "/api/chatstore/tx", (e) => {
  const NAME = /^[A-Za-z0-9_]+$/;
  const { carriesText, quoted } = require(`${__hooks}/chatstore_tags.js`);
  const body = e.requestInfo().body || {};
  let fail = null;
  const stop = (status, message) => {
    fail = { status: status, message: message };
    throw new Error(message);
  };
  const collection = (tx, name) => {
    if (typeof name !== "string" || !NAME.test(name)) stop(400, "invalid collection name");
    try {
      return tx.findCollectionByNameOrId(name);
    } catch (_) {
      return stop(404, "collection " + name + " not found");
    }
  };
  const find = (tx, col, id) => {
    if (typeof id !== "string" || id === "") stop(400, "invalid record id");
    try {
      return tx.findRecordById(col, id);
    } catch (err) {
      // Only a missing record is "not found": any other failure (a busy database, a broken
      // read) ends the transaction and is answered as what it is.
      if (String(err && err.value ? err.value : err).indexOf("no rows in result set") >= 0) return null;
      throw err;
    }
  };
  // Deletes tag records by SQL. PocketBase's record delete would also take each tag out of
  // the `tags` relation of every record pointing at it, which reads every chat of every user
  // (measured: add + remove tag 11 ms at 1k chats, 147 ms at 10k); the callers only delete
  // tags that no chat carries (checked among the tag's own user's chats, the only ones that
  // can), so there is nothing to take out. Tags have no files and no change records.
  const deleteTags = (tx, tags, where, params) => {
    tx.db()
      .newQuery("DELETE FROM `" + tags.name + "` WHERE " + where)
      .bind(params)
      .execute();
  };
  // Deletes the records that go with record `id`, deleted by the op: those of each of
  // `cascades` ([{collection, field}]: core's rows::cascades, Open WebUI's ON DELETE CASCADE
  // foreign keys to chats and files) whose field holds the id. PocketBase has no foreign keys.
  const cascade = (tx, cascades, id) => {
    for (const c of cascades || []) {
      if (typeof c.field !== "string" || !NAME.test(c.field)) stop(400, "invalid field name");
      const target = collection(tx, c.collection);
      const where = {};
      where[c.field] = id;
      for (const rec of tx.findAllRecords(target, $dbx.hashExp(where))) tx.delete(rec);
    }
  };
  const setFields = (rec, fields) => {
    for (const k of Object.keys(fields || {})) rec.set(k, fields[k]);
  };
  const save = (tx, rec, entity) => {
    try {
      tx.save(rec);
    } catch (err) {
      if (fail) throw err;
      const msg = String(err && err.value ? err.value : err);
      // PocketBase: validation_pk_invalid / validation_not_unique, by their messages.
      if (msg.indexOf("primary key is invalid or already exists") >= 0 || msg.indexOf("must be unique") >= 0) {
        stop(409, entity + " " + rec.id + ": " + msg);
      }
      // The write lock is taken by the first save: another process holding it past the busy
      // timeout is a moment's unavailability, not bad input.
      if (msg.indexOf("database is locked") >= 0 || msg.indexOf("SQLITE_BUSY") >= 0) {
        stop(503, entity + " " + rec.id + ": " + msg);
      }
      stop(400, entity + " " + rec.id + ": " + msg);
    }
  };
  const ops = body.ops;
  if (!Array.isArray(ops)) return e.json(400, { status: 400, message: "ops must be an array", data: {} });
  const results = [];
  try {
    e.app.runInTransaction((tx) => {
      for (const op of ops) {
        const col = collection(tx, op.collection);
        const entity = op.entity || col.name;
        switch (op.op) {
          case "expect_version": {
            const rec = find(tx, col, op.id);
            if (!rec) stop(404, entity + " " + op.id + " not found");
            if (rec.getInt("version") !== op.version) stop(412, entity + " " + op.id + " changed concurrently");
            results.push(null);
            break;
          }
          case "create":
          case "ensure":
          case "upsert": {
            let rec = find(tx, col, op.id);
            if (rec && op.op === "create") stop(409, entity + " " + op.id + " exists");
            if (rec && op.op === "ensure") {
              results.push(false);
              break;
            }
            if (!rec) {
              rec = new Record(col);
              rec.set("id", op.id);
            }
            setFields(rec, op.fields);
            save(tx, rec, entity);
            results.push(true);
            break;
          }
          case "update": {
            const rec = find(tx, col, op.id);
            if (!rec) stop(404, entity + " " + op.id + " not found");
            setFields(rec, op.fields);
            save(tx, rec, entity);
            // "return": the record as stored (read and written inside this transaction).
            results.push(op["return"] ? rec : true);
            break;
          }
          case "delete": {
            const rec = find(tx, col, op.id);
            if (!rec) {
              if (op.must_exist) stop(404, entity + " " + op.id + " not found");
              results.push(false);
              break;
            }
            tx.delete(rec);
            results.push(true);
            break;
          }
          case "delete_where": {
            if (typeof op.field !== "string" || !NAME.test(op.field)) stop(400, "invalid field name");
            const where = {};
            where[op.field] = op.value;
            const recs = tx.findAllRecords(col, $dbx.hashExp(where));
            for (const rec of recs) {
              tx.delete(rec);
              cascade(tx, op.cascades, rec.id);
            }
            results.push(recs.length);
            break;
          }
          case "unique": {
            if (typeof op.field !== "string" || !NAME.test(op.field)) stop(400, "invalid field name");
            const where = {};
            where[op.field] = op.value;
            const recs = tx.findAllRecords(col, $dbx.hashExp(where));
            for (const rec of recs) {
              if (rec.id !== op.except) stop(409, op.message || entity + " " + op.field + " is taken");
            }
            results.push(null);
            break;
          }
          case "drop_orphan_tags": {
            // op.collection: the tags; op.chats: the chats whose `tags` relation points at them.
            // Only the tag's own user's chats can carry it: the check reads those through the
            // (user_id, updated_at) index, never every chat of every user.
            const chats = collection(tx, op.chats);
            const dropped = [];
            for (const id of op.ids || []) {
              const rec = find(tx, col, id);
              if (!rec) continue;
              const row = new DynamicModel({ n: 0 });
              tx.db()
                .newQuery(
                  "SELECT COUNT(*) AS n FROM (SELECT 1 FROM `" + chats.name + "` c, json_each(CASE WHEN json_valid(c.tags) THEN c.tags ELSE '[]' END) je WHERE c.user_id = {:user}" + carriesText("{:quoted}", id) + " AND je.value = {:id} LIMIT 1)"
                )
                .bind({ id: id, quoted: quoted(id), user: rec.getString("user_id") })
                .one(row);
              if (row.n === 0) {
                deleteTags(tx, col, "id = {:id}", { id: id });
                dropped.push(id);
              }
            }
            results.push(dropped);
            break;
          }
          case "delete_user_chats": {
            // op.collection: the chats; op.messages, op.tags: their messages and tags. Deletes
            // every chat of op.user_id with its messages and what op.cascades ties to it (its
            // shares and file links), then every tag of the user.
            const messages = collection(tx, op.messages);
            const tags = collection(tx, op.tags);
            const chats = tx.findAllRecords(col, $dbx.hashExp({ user_id: op.user_id }));
            for (const chat of chats) {
              for (const m of tx.findAllRecords(messages, $dbx.hashExp({ chat_id: chat.id }))) tx.delete(m);
              tx.delete(chat);
              cascade(tx, op.cascades, chat.id);
            }
            deleteTags(tx, tags, "user_id = {:user}", { user: op.user_id });
            results.push(chats.length);
            break;
          }
          case "delete_tag": {
            // op.collection: the tags; op.chats: the chats. Takes the tag out of every chat
            // (bumping each chat's version, so a concurrent writer re-reads it), then deletes it.
            const chats = collection(tx, op.chats);
            const tag = find(tx, col, op.id);
            if (!tag) stop(404, entity + " " + op.id + " not found");
            const rows = arrayOf(new DynamicModel({ id: "" }));
            tx.db()
              .newQuery(
                "SELECT DISTINCT c.id AS id FROM `" + chats.name + "` c, json_each(CASE WHEN json_valid(c.tags) THEN c.tags ELSE '[]' END) je WHERE c.user_id = {:user}" + carriesText("{:quoted}", op.id) + " AND je.value = {:id}"
              )
              .bind({ id: op.id, quoted: quoted(op.id), user: tag.getString("user_id") })
              .all(rows);
            for (const row of rows) {
              const chat = tx.findRecordById(chats, row.id);
              chat.set("tags", chat.getStringSlice("tags").filter((t) => t !== op.id));
              chat.set("version", chat.getInt("version") + 1);
              save(tx, chat, "chat");
            }
            deleteTags(tx, col, "id = {:id}", { id: op.id });
            results.push(rows.length);
            break;
          }
          case "upsert_messages": {
            // op.collection: the chats; op.messages: their messages. Writes op.items into chat
            // op.chat_id as core's `blob::upsert_message` does (the message record; its entry in
            // the blob's history.messages, the old and the new parent's childrenIds,
            // history.currentId), raises the chat's updated_at and bumps its version, all read
            // and written inside this transaction (PocketBase runs one write transaction at a
            // time, so nothing can change the chat between the read and the write). Message
            // contents are JSON text from the adapter and reach the blob only through SQLite's
            // JSON functions: JSON.parse would pass their numbers through float64 (1.0 -> 1).
            const messages = collection(tx, op.messages);
            const chat = find(tx, col, op.chat_id);
            if (!chat) stop(404, entity + " " + op.chat_id + " not found");
            const owner = chat.getString("user_id");
            const one = (sql, params, model) => {
              tx.db().newQuery(sql).bind(params).one(model);
              return model;
            };
            let blob = one(
              "SELECT CASE WHEN chat IS NULL OR chat = '' OR json_type(chat) = 'null' THEN '{}' ELSE chat END AS b FROM `" + col.name + "` WHERE id = {:id}",
              { id: op.chat_id },
              new DynamicModel({ b: "" })
            ).b;
            const shape = one(
              "SELECT COALESCE(json_type({:b}), '') AS t, COALESCE(json_type({:b}, '$.history'), '') AS h, COALESCE(json_type({:b}, '$.history.messages'), '') AS m",
              { b: blob },
              new DynamicModel({ t: "", h: "", m: "" })
            );
            // The blob's history entries, reduced to what the rules read: whether the entry is an
            // object, its string `id` and `parentId`, its integer `timestamp` (else 0) and the
            // strings of its `childrenIds`. (`IS`, not `=`: an entry without the key has a NULL
            // type, and NULL into an integer column failed every upsert into the chat.)
            const entries = new Map();
            if (shape.t === "object" && shape.h === "object" && shape.m === "object") {
              const rows = arrayOf(new DynamicModel({ k: "", obj: 0, has_id: 0, id: "", has_parent: 0, parent: "", ts: 0, kids: "" }));
              tx.db()
                .newQuery(
                  "SELECT je.key AS k, je.type = 'object' AS obj," +
                    " CASE WHEN je.type = 'object' THEN json_type(je.value, '$.id') IS 'text' ELSE 0 END AS has_id," +
                    " CASE WHEN je.type = 'object' AND json_type(je.value, '$.id') = 'text' THEN json_extract(je.value, '$.id') ELSE '' END AS id," +
                    " CASE WHEN je.type = 'object' THEN json_type(je.value, '$.parentId') IS 'text' ELSE 0 END AS has_parent," +
                    " CASE WHEN je.type = 'object' AND json_type(je.value, '$.parentId') = 'text' THEN json_extract(je.value, '$.parentId') ELSE '' END AS parent," +
                    " CASE WHEN je.type = 'object' AND json_type(je.value, '$.timestamp') = 'integer' THEN json_extract(je.value, '$.timestamp') ELSE 0 END AS ts," +
                    " CASE WHEN je.type = 'object' AND json_type(je.value, '$.childrenIds') = 'array'" +
                    " THEN (SELECT json_group_array(c.value) FROM json_each(je.value, '$.childrenIds') c WHERE c.type = 'text') ELSE '[]' END AS kids" +
                    " FROM json_each({:b}, '$.history.messages') je"
                )
                .bind({ b: blob })
                .all(rows);
              for (const r of rows) {
                entries.set(r.k, {
                  obj: !!r.obj,
                  id: r.has_id ? r.id : null,
                  parent: r.has_parent ? r.parent : null,
                  ts: r.ts,
                  kids: JSON.parse(r.kids),
                  entry: null,
                });
              }
            }
            // Rust orders strings by their UTF-8 bytes, which is code point order.
            const byCodePoints = (a, b) => {
              const x = Array.from(a);
              const y = Array.from(b);
              for (let i = 0; i < x.length && i < y.length; i++) {
                const d = x[i].codePointAt(0) - y[i].codePointAt(0);
                if (d !== 0) return d;
              }
              return x.length - y.length;
            };
            // A key goes into a JSON path (inside a quoted SQL literal where the entries are
            // written): none of the characters that would end either is let through (core's id
            // rules refuse them first; this holds for any caller of the route).
            const writable = (key) => {
              if (key.indexOf('"') >= 0 || key.indexOf("\\") >= 0 || key.indexOf("'") >= 0) stop(400, "chat " + op.chat_id + ": history key " + key + " cannot be written");
              return key;
            };
            // op.modelled: core's blob::MESSAGE_KEYS. A replaced entry keeps every other key it
            // held (the client's own: annotation, modelName, ...), as core's upsert_message does.
            // Required: without it a replaced entry's every key would be kept twice (an adapter
            // older than version 5 of these routes sends none; the version check refuses it).
            if (!Array.isArray(op.modelled) || op.modelled.length === 0) stop(400, "upsert_messages needs modelled (routes version 5)");
            const modelled = op.modelled;
            for (const k of modelled) {
              if (typeof k !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) stop(400, "invalid modelled key");
            }
            const objectsAtStart = new Set();
            for (const [k, e] of entries) if (e.obj) objectsAtStart.add(k);
            // The entry to write for message `key`: `entry` (JSON text) with the client's keys of
            // the entry the blob held at the start, joined as JSON text so that no number passes
            // through float64.
            const withClientKeys = (key, entry) => {
              if (!objectsAtStart.has(key)) return entry;
              const params = { b: blob, p: "$.history.messages.\"" + writable(key) + "\"", e: entry };
              const removed = modelled.map((k, i) => {
                params["r" + i] = "$." + k;
                return "{:r" + i + "}";
              });
              const held = "json_extract({:b}, {:p})";
              const kept = "COALESCE(json_remove(" + held + ", " + removed.join(", ") + "), '{}')";
              return one(
                "SELECT CASE WHEN json_type({:e}) IS NOT 'object' OR " + kept + " = '{}' THEN {:e}" +
                  " ELSE substr(" + kept + ", 1, length(" + kept + ") - 1) || ',' || substr(json({:e}), 2) END AS m",
                params,
                new DynamicModel({ m: "" })
              ).m;
            };
            const touched = new Set();
            const stored = [];
            let updated = chat.getInt("updated_at");
            for (let n = 0; n < (op.items || []).length; n++) {
              const it = op.items[n];
              if (typeof it.id !== "string" || typeof it.record !== "string" || typeof it.doc !== "string" || typeof it.entry !== "string") {
                stop(400, "invalid message item");
              }
              // The record: created_at is the stored message's unless the caller gave one.
              let rec = find(tx, messages, it.record);
              let created = it.created_at;
              if (rec && it.keep_created_at) {
                created = one(
                  "SELECT CAST(json_extract(doc, '$.created_at') AS INTEGER) AS t FROM `" + messages.name + "` WHERE id = {:id}",
                  { id: it.record },
                  new DynamicModel({ t: 0 })
                ).t;
              }
              const author = it.owner_is_author ? owner : null;
              const doc = one(
                "SELECT json_set(json({:doc}), '$.created_at', {:t}" + (author === null ? "" : ", '$.user_id', {:u}") + ") AS d",
                { doc: it.doc, t: created, u: author || "" },
                new DynamicModel({ d: "" })
              ).d;
              if (!rec) {
                rec = new Record(messages);
                rec.set("id", it.record);
              }
              rec.set("chat_id", op.chat_id);
              rec.set("msg_id", it.id);
              rec.set("key", op.chat_id + "-" + it.id);
              rec.set("created_at", created);
              rec.set("doc", doc);
              save(tx, rec, "message");
              stored.push({ created_at: created, user_id: author });
              if (it.updated_at > updated) updated = it.updated_at;
              if (shape.t !== "object") continue;
              // core's blob::upsert_message on the entries.
              const parent = typeof it.parent_id === "string" ? it.parent_id : null;
              const previous = entries.get(it.id);
              let kids;
              if (previous) {
                kids = previous.obj ? previous.kids.slice() : [];
              } else {
                const found = [];
                for (const e of entries.values()) {
                  if (e.obj && e.parent === it.id && e.id !== null) found.push(e);
                }
                found.sort((a, b) => (a.ts !== b.ts ? (a.ts < b.ts ? -1 : 1) : byCodePoints(a.id, b.id)));
                kids = found.map((e) => e.id);
              }
              const oldParent = previous && previous.obj ? previous.parent : null;
              if (oldParent !== parent && oldParent !== null) {
                const old = entries.get(oldParent);
                if (old && old.obj) {
                  old.kids = old.kids.filter((c) => c !== it.id);
                  touched.add(oldParent);
                }
              }
              if (parent !== null) {
                const p = entries.get(parent);
                if (p && p.obj && p.kids.indexOf(it.id) < 0) {
                  p.kids.push(it.id);
                  touched.add(parent);
                }
              }
              entries.set(it.id, { obj: true, id: it.id, parent: parent, ts: created, kids: kids, entry: { text: withClientKeys(it.id, it.entry), author: author } });
              touched.add(it.id);
            }
            if (shape.t === "object" && op.items.length > 0) {
              blob = one(
                "SELECT CASE WHEN json_type({:b}, '$.history') = 'object' THEN" +
                  " CASE WHEN json_type({:b}, '$.history.messages') = 'object' THEN {:b} ELSE json_set({:b}, '$.history.messages', json('{}')) END" +
                  " ELSE json_set({:b}, '$.history', json('{\"messages\":{},\"currentId\":null}')) END AS b",
                { b: blob },
                new DynamicModel({ b: "" })
              ).b;
              // The touched entries, written with json_set in slices of 50 (SQLite caps a
              // function's arguments).
              const keys = Array.from(touched);
              for (let start = 0; start < keys.length; start += 50) {
                const args = [];
                const params = { b: blob };
                keys.slice(start, start + 50).forEach((key, i) => {
                  const e = entries.get(key);
                  const path = '$.history.messages."' + writable(key) + '"';
                  params["k" + i] = JSON.stringify(e.kids);
                  if (e.entry) {
                    params["e" + i] = e.entry.text;
                    params["t" + i] = e.ts;
                    let value = "json_set(json({:e" + i + "}), '$.childrenIds', json({:k" + i + "}), '$.timestamp', {:t" + i + "}";
                    if (e.entry.author !== null) {
                      params["u" + i] = e.entry.author;
                      value += ", '$.user_id', {:u" + i + "}";
                    }
                    args.push("'" + path + "', " + value + ")");
                  } else {
                    args.push("'" + path + ".childrenIds', json({:k" + i + "})");
                  }
                });
                blob = one("SELECT json_set({:b}, " + args.join(", ") + ") AS b", params, new DynamicModel({ b: "" })).b;
              }
              blob = one(
                "SELECT json_set({:b}, '$.history.currentId', {:cur}) AS b",
                { b: blob, cur: op.items[op.items.length - 1].id },
                new DynamicModel({ b: "" })
              ).b;
            }
            chat.set("chat", blob);
            chat.set("updated_at", updated);
            chat.set("version", chat.getInt("version") + 1);
            save(tx, chat, "chat");
            results.push(stored);
            break;
          }
          default:
            stop(400, "unknown op " + op.op);
        }
      }
    });
  } catch (err) {
    if (fail) return e.json(fail.status, { status: fail.status, message: fail.message, data: {} });
    const msg = String(err);
    const status = msg.indexOf("database is locked") >= 0 || msg.indexOf("SQLITE_BUSY") >= 0 ? 503 : 500;
    return e.json(status, { status: status, message: msg, data: {} });
  }
  return e.json(200, { results: results });
}, $apis.requireSuperuserAuth(), $apis.bodyLimit(536870912));

// GET /api/chatstore/chat-list: one page of a user's chats, every list the adapter makes:
// optionally only those having all of `tags` (a JSON array of tag record ids) or, with
// untagged=1, no tag; internal chats never count unless internal=1. One query of the summary's columns: the
// records API would load each record whole (its conversation blob included) and serialise it
// before picking the asked fields.
// Query: chats, tags_collection, user, [tags | untagged=1], archived=0|1, pinned=0|1,
// folder=<id> | nofolder=1, title=<lower-case substring>, internal=1, order=updated|created|title,
// after_key + after_id (keyset paging: only the chats after that key and id in the order),
// limit (-1: all), offset, skip_total=1 (no count: Open WebUI's lists page without one).
// Answer: {"items": [summary], "total": n} (total null with skip_total=1).
routerAdd("GET", "/api/chatstore/chat-list", (e) => {
  const NAME = /^[A-Za-z0-9_]+$/;
  const { carriesText, quoted } = require(`${__hooks}/chatstore_tags.js`);
  const q = e.request.url.query();
  const chats = q.get("chats");
  const tagsCol = q.get("tags_collection");
  if (!NAME.test(chats) || !NAME.test(tagsCol)) throw new BadRequestError("invalid collection name");
  e.app.findCollectionByNameOrId(chats);
  e.app.findCollectionByNameOrId(tagsCol);
  const params = { user: q.get("user") };
  const where = ["c.user_id = {:user}"];
  if (q.get("internal") !== "1") where.push("c.internal = FALSE");
  const tagsOf = "json_each(CASE WHEN json_valid(c.tags) THEN c.tags ELSE '[]' END)";
  if (q.get("untagged") === "1") {
    where.push("NOT EXISTS (SELECT 1 FROM " + tagsOf + ")");
  } else if (q.has("tags")) {
    let wanted;
    try {
      wanted = JSON.parse(q.get("tags") || "[]");
    } catch (_) {
      throw new BadRequestError("tags must be a JSON array");
    }
    if (!Array.isArray(wanted) || wanted.length === 0 || wanted.some((t) => typeof t !== "string")) {
      throw new BadRequestError("tags must be a non-empty JSON array of strings");
    }
    const unique = Array.from(new Set(wanted));
    params.tags = JSON.stringify(unique);
    params.need = unique.length;
    // The cheap text test first: the JSON test below parses every candidate's `tags`.
    unique.forEach((id, k) => {
      const text = carriesText("{:t" + k + "}", id);
      if (text) {
        params["t" + k] = quoted(id);
        where.push(text.replace(/^ AND /, ""));
      }
    });
    where.push(
      "(SELECT COUNT(DISTINCT je.value) FROM " + tagsOf + " je WHERE je.value IN (SELECT value FROM json_each({:tags}))) = {:need}"
    );
  }
  if (q.has("archived")) {
    params.archived = q.get("archived") === "1";
    where.push("c.archived = {:archived}");
  }
  if (q.has("pinned")) {
    params.pinned = q.get("pinned") === "1";
    where.push("c.pinned = {:pinned}");
  }
  if (q.get("nofolder") === "1") {
    where.push("c.folder_id = ''");
  } else if (q.has("folder")) {
    params.folder = q.get("folder");
    where.push("c.folder_id = {:folder}");
  }
  if (q.has("title")) {
    params.title = q.get("title");
    where.push("instr(c.title_lower, {:title}) > 0");
  }
  const orders = {
    updated: "c.updated_at DESC, c.id ASC",
    created: "c.created_at DESC, c.id ASC",
    title: "c.title ASC, c.id ASC",
  };
  const order = orders[q.get("order") || "updated"];
  if (!order) throw new BadRequestError("unknown order");
  if (q.has("after_id")) {
    // Keyset paging: the chats after the cursor in the list's order, a bound on the order's
    // key first (so the list index starts its range there), then the tie broken by id.
    const keys = { updated: ["c.updated_at", "<"], created: ["c.created_at", "<"], title: ["c.title", ">"] };
    const [key, after] = keys[q.get("order") || "updated"];
    if (key === "c.title") {
      params.after_key = q.get("after_key");
    } else {
      params.after_key = parseInt(q.get("after_key"), 10);
      if (isNaN(params.after_key)) throw new BadRequestError("after_key must be an integer for this order");
    }
    params.after_id = q.get("after_id");
    where.push(key + " " + after + "= {:after_key} AND (" + key + " " + after + " {:after_key} OR c.id > {:after_id})");
  }
  params.limit = parseInt(q.get("limit") || "-1", 10);
  params.offset = parseInt(q.get("offset") || "0", 10);
  if (isNaN(params.limit) || isNaN(params.offset) || params.offset < 0) throw new BadRequestError("bad page");
  const from = " FROM `" + chats + "` c WHERE " + where.join(" AND ");
  const skipTotal = q.get("skip_total") === "1";
  const count = new DynamicModel({ n: 0 });
  // A failed read is answered as what it is (503 for a busy database, which the adapter tries
  // again; 500 otherwise): thrown, it became PocketBase's generic 400, read as bad input.
  const failed = (err) => {
    const msg = String(err);
    const status = msg.indexOf("database is locked") >= 0 || msg.indexOf("SQLITE_BUSY") >= 0 ? 503 : 500;
    return e.json(status, { status: status, message: msg, data: {} });
  };
  try {
    if (!skipTotal) e.app.db().newQuery("SELECT COUNT(*) AS n" + from).bind(params).one(count);
  } catch (err) {
    return failed(err);
  }
  const rows = arrayOf(
    new DynamicModel({
      id: "",
      user_id: "",
      title: "",
      archived: false,
      pinned: false,
      folder_id: "",
      created_at: 0,
      updated_at: 0,
      tag_ids: "",
    })
  );
  try {
    e.app
      .db()
      .newQuery(
        "SELECT c.id, c.user_id, c.title, c.archived, c.pinned, c.folder_id, c.created_at, c.updated_at," +
          " (SELECT COALESCE(json_group_array(t.tag_id), '[]') FROM `" + tagsCol + "` t WHERE t.id IN (SELECT value FROM " + tagsOf + ")) AS tag_ids" +
          from + " ORDER BY " + order + " LIMIT {:limit} OFFSET {:offset}"
      )
      .bind(params)
      .all(rows);
  } catch (err) {
    return failed(err);
  }
  return e.json(200, { items: rows, total: skipTotal ? null : count.n });
}, $apis.requireSuperuserAuth());

// Change records for the adapter's change feed (see chatstore_changes.js): every deletion of a
// user, chat, message or file and every change of a chat's tag set, recorded inside the
// deleting or updating transaction.
onRecordDelete((e) => {
  e.next();
  require(`${__hooks}/chatstore_changes.js`).record(e.app, e.record, "deleted", []);
});

onRecordUpdate((e) => {
  const name = e.record.collection().name;
  const tagsChanged =
    /owui_chats$/.test(name) &&
    JSON.stringify(e.record.original().get("tags")) !== JSON.stringify(e.record.get("tags"));
  e.next();
  if (tagsChanged) require(`${__hooks}/chatstore_changes.js`).record(e.app, e.record, "updated", ["tags"]);
});
