/// <reference path="../pb_data/types.d.ts" />
// chatstore: Open WebUI keys a folder by (id, user_id), so two users may have folders with
// the same id. Records of owui_rows_folder take the whole key as their record id (the escaped
// id, "~~", the escaped user id) and a unique index on (owui_id, user_id) replaces the one on
// owui_id alone. Folders an earlier chatstore wrote under their id alone are written again
// under the new record id. The adapter does the same at start-up (PocketBase::rekey_rows).
migrate((app) => {
  const name = "owui_rows_folder";
  let collection;
  try {
    collection = app.findCollectionByNameOrId(name);
  } catch (_) {
    return;
  }
  const key = "CREATE UNIQUE INDEX idx_owui_rows_folder_key ON owui_rows_folder (`owui_id`, `user_id`)";
  const indexes = JSON.parse(JSON.stringify(collection.indexes || [])).filter(
    (index) => !index.includes("idx_owui_rows_folder_owui_id ") && index !== key,
  );
  indexes.unshift(key);
  // As chatstore's codec::encode_id: a-z, 0-9, '-', '_' and non-ASCII kept, the rest ~XX.
  const escape = (text) => {
    let out = "";
    for (const c of text) {
      const code = c.codePointAt(0);
      if (/^[a-z0-9_-]$/.test(c) || code > 127) {
        out += c;
      } else {
        out += "~" + code.toString(16).toUpperCase().padStart(2, "0");
      }
    }
    return out;
  };
  app.runInTransaction((txApp) => {
    // The old unique index on owui_id alone goes first: it would refuse a second user's folder.
    unmarshal({ indexes: indexes }, collection);
    txApp.save(collection);
    const old = txApp.findRecordsByFilter(name, "id !~ '~~'", "", 0, 0);
    for (const record of old) {
      const fresh = new Record(collection);
      for (const field of collection.fields) {
        if (field.name !== "id") {
          fresh.set(field.name, record.get(field.name));
        }
      }
      fresh.set("id", record.id + "~~" + escape(record.getString("user_id")));
      txApp.delete(record);
      txApp.save(fresh);
    }
  });
}, (_app) => {
  // Nothing to undo: the records keep their ids, the index its columns.
});
