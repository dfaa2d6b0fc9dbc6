/// <reference path="../pb_data/types.d.ts" />
// chatstore routes for the PocketBase adapter (crate chatstore-pocketbase).
// Start PocketBase with `--hooksDir adapter-pocketbase/pb_hooks` (scripts/services.sh does).
// All routes are superuser only. PocketBase runs each handler in its own JS VM, so every
// handler is self-contained. Collection names are checked against ^[A-Za-z0-9_]+$ and must
// exist; every value reaches SQL as a bound parameter.

// GET /api/chatstore/info: the routes' version (the adapter refuses to start on a mismatch).
routerAdd("GET", "/api/chatstore/info", (e) => {
  return e.json(200, { version: 2 });
}, $apis.requireSuperuserAuth());

// POST /api/chatstore/tx {"ops": [...]}: runs record operations in one transaction, all or
// nothing. Failures answer 404 (missing record), 409 (taken id or unique value), 412 (a chat
// changed since the caller read it: read again and retry) or 400.
routerAdd("POST", "/api/chatstore/tx", (e) => {
  const NAME = /^[A-Za-z0-9_]+$/;
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
    } catch (_) {
      return null;
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
            for (const rec of recs) tx.delete(rec);
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
                  "SELECT COUNT(*) AS n FROM (SELECT 1 FROM `" + chats.name + "` c, json_each(CASE WHEN json_valid(c.tags) THEN c.tags ELSE '[]' END) je WHERE c.user_id = {:user} AND je.value = {:id} LIMIT 1)"
                )
                .bind({ id: id, user: rec.getString("user_id") })
                .one(row);
              if (row.n === 0) {
                tx.delete(rec);
                dropped.push(id);
              }
            }
            results.push(dropped);
            break;
          }
          case "delete_user_chats": {
            // op.collection: the chats; op.messages, op.tags: their messages and tags. Deletes
            // every chat of op.user_id with its messages, then every tag of the user.
            const messages = collection(tx, op.messages);
            const tags = collection(tx, op.tags);
            const chats = tx.findAllRecords(col, $dbx.hashExp({ user_id: op.user_id }));
            for (const chat of chats) {
              for (const m of tx.findAllRecords(messages, $dbx.hashExp({ chat_id: chat.id }))) tx.delete(m);
              tx.delete(chat);
            }
            for (const t of tx.findAllRecords(tags, $dbx.hashExp({ user_id: op.user_id }))) tx.delete(t);
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
                "SELECT DISTINCT c.id AS id FROM `" + chats.name + "` c, json_each(CASE WHEN json_valid(c.tags) THEN c.tags ELSE '[]' END) je WHERE c.user_id = {:user} AND je.value = {:id}"
              )
              .bind({ id: op.id, user: tag.getString("user_id") })
              .all(rows);
            for (const row of rows) {
              const chat = tx.findRecordById(chats, row.id);
              chat.set("tags", chat.getStringSlice("tags").filter((t) => t !== op.id));
              chat.set("version", chat.getInt("version") + 1);
              save(tx, chat, "chat");
            }
            tx.delete(tag);
            results.push(rows.length);
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

// GET /api/chatstore/chats-by-tags: one page of a user's chats having all of `tags` (a JSON
// array of tag record ids) or, with untagged=1, no tag; internal chats never count.
// Query: chats, tags_collection, user, tags | untagged=1, archived=0|1, pinned=0|1,
// folder=<id> | nofolder=1, title=<lower-case substring>, order=updated|created|title,
// limit (-1: all), offset. Answer: {"items": [summary], "total": n}.
routerAdd("GET", "/api/chatstore/chats-by-tags", (e) => {
  const NAME = /^[A-Za-z0-9_]+$/;
  const q = e.request.url.query();
  const chats = q.get("chats");
  const tagsCol = q.get("tags_collection");
  if (!NAME.test(chats) || !NAME.test(tagsCol)) throw new BadRequestError("invalid collection name");
  e.app.findCollectionByNameOrId(chats);
  e.app.findCollectionByNameOrId(tagsCol);
  const params = { user: q.get("user") };
  const where = ["c.user_id = {:user}", "c.internal = FALSE"];
  const tagsOf = "json_each(CASE WHEN json_valid(c.tags) THEN c.tags ELSE '[]' END)";
  if (q.get("untagged") === "1") {
    where.push("NOT EXISTS (SELECT 1 FROM " + tagsOf + ")");
  } else {
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
  params.limit = parseInt(q.get("limit") || "-1", 10);
  params.offset = parseInt(q.get("offset") || "0", 10);
  if (isNaN(params.limit) || isNaN(params.offset) || params.offset < 0) throw new BadRequestError("bad page");
  const from = " FROM `" + chats + "` c WHERE " + where.join(" AND ");
  const count = new DynamicModel({ n: 0 });
  e.app.db().newQuery("SELECT COUNT(*) AS n" + from).bind(params).one(count);
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
  e.app
    .db()
    .newQuery(
      "SELECT c.id, c.user_id, c.title, c.archived, c.pinned, c.folder_id, c.created_at, c.updated_at," +
        " (SELECT COALESCE(json_group_array(t.tag_id), '[]') FROM `" + tagsCol + "` t WHERE t.id IN (SELECT value FROM " + tagsOf + ")) AS tag_ids" +
        from + " ORDER BY " + order + " LIMIT {:limit} OFFSET {:offset}"
    )
    .bind(params)
    .all(rows);
  return e.json(200, { items: rows, total: count.n });
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
