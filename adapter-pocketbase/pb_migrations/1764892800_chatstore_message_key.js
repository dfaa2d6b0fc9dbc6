/// <reference path="../pb_data/types.d.ts" />
// chatstore schema (generated from adapter-pocketbase/src/schema.rs by
// `CHATSTORE_WRITE_MIGRATION=1 cargo test -p chatstore-pocketbase migration_holds_the_boot_schema`).
// The adapter enforces the same schema at start-up; this migration is for operators who run
// `pocketbase migrate up --migrationsDir adapter-pocketbase/pb_migrations`.
migrate((app) => {
const collections = /* schema:begin */ [
  {
    "createRule": null,
    "deleteRule": null,
    "fields": [
      {
        "autogeneratePattern": "[a-z0-9]{15}",
        "hidden": false,
        "id": "text3208210256",
        "max": 255,
        "min": 1,
        "name": "id",
        "pattern": "^[^/\\\\]+$",
        "presentable": false,
        "primaryKey": true,
        "required": true,
        "system": true,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_email",
        "max": 255,
        "min": 0,
        "name": "email",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_email_key",
        "max": 255,
        "min": 0,
        "name": "email_key",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_name",
        "max": 2147483647,
        "min": 0,
        "name": "name",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_role",
        "max": 255,
        "min": 0,
        "name": "role",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_profile_image_url",
        "max": 2147483647,
        "min": 0,
        "name": "profile_image_url",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "hidden": false,
        "id": "cs_info",
        "maxSize": 268435456,
        "name": "info",
        "presentable": false,
        "required": false,
        "system": false,
        "type": "json"
      },
      {
        "hidden": false,
        "id": "cs_settings",
        "maxSize": 268435456,
        "name": "settings",
        "presentable": false,
        "required": false,
        "system": false,
        "type": "json"
      },
      {
        "hidden": false,
        "id": "cs_created_at",
        "max": null,
        "min": null,
        "name": "created_at",
        "onlyInt": false,
        "presentable": false,
        "required": false,
        "system": false,
        "type": "number"
      },
      {
        "hidden": false,
        "id": "cs_updated_at",
        "max": null,
        "min": null,
        "name": "updated_at",
        "onlyInt": false,
        "presentable": false,
        "required": false,
        "system": false,
        "type": "number"
      },
      {
        "hidden": false,
        "id": "cs_last_active_at",
        "max": null,
        "min": null,
        "name": "last_active_at",
        "onlyInt": false,
        "presentable": false,
        "required": false,
        "system": false,
        "type": "number"
      }
    ],
    "id": "pbc_owui_users",
    "indexes": [
      "CREATE UNIQUE INDEX idx_owui_users_id_nocase ON owui_users (id COLLATE NOCASE)",
      "CREATE UNIQUE INDEX idx_owui_users_email_key ON owui_users (email_key)",
      "CREATE INDEX idx_owui_users_created ON owui_users (created_at)",
      "CREATE INDEX idx_owui_users_updated ON owui_users (updated_at)"
    ],
    "listRule": null,
    "name": "owui_users",
    "system": false,
    "type": "base",
    "updateRule": null,
    "viewRule": null
  },
  {
    "createRule": null,
    "deleteRule": null,
    "fields": [
      {
        "autogeneratePattern": "[a-z0-9]{15}",
        "hidden": false,
        "id": "text3208210256",
        "max": 64,
        "min": 1,
        "name": "id",
        "pattern": "^[^/\\\\]+$",
        "presentable": false,
        "primaryKey": true,
        "required": true,
        "system": true,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_user_id",
        "max": 255,
        "min": 0,
        "name": "user_id",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_tag_id",
        "max": 2147483647,
        "min": 0,
        "name": "tag_id",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_name",
        "max": 2147483647,
        "min": 0,
        "name": "name",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "hidden": false,
        "id": "cs_meta",
        "maxSize": 268435456,
        "name": "meta",
        "presentable": false,
        "required": false,
        "system": false,
        "type": "json"
      }
    ],
    "id": "pbc_owui_tags",
    "indexes": [
      "CREATE UNIQUE INDEX idx_owui_tags_id_nocase ON owui_tags (id COLLATE NOCASE)",
      "CREATE UNIQUE INDEX idx_owui_tags_user_tag ON owui_tags (user_id, tag_id)"
    ],
    "listRule": null,
    "name": "owui_tags",
    "system": false,
    "type": "base",
    "updateRule": null,
    "viewRule": null
  },
  {
    "createRule": null,
    "deleteRule": null,
    "fields": [
      {
        "autogeneratePattern": "[a-z0-9]{15}",
        "hidden": false,
        "id": "text3208210256",
        "max": 255,
        "min": 1,
        "name": "id",
        "pattern": "^[^/\\\\]+$",
        "presentable": false,
        "primaryKey": true,
        "required": true,
        "system": true,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_user_id",
        "max": 255,
        "min": 0,
        "name": "user_id",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_title",
        "max": 2147483647,
        "min": 0,
        "name": "title",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_title_lower",
        "max": 2147483647,
        "min": 0,
        "name": "title_lower",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "hidden": false,
        "id": "cs_chat",
        "maxSize": 268435456,
        "name": "chat",
        "presentable": false,
        "required": false,
        "system": false,
        "type": "json"
      },
      {
        "hidden": false,
        "id": "cs_meta",
        "maxSize": 268435456,
        "name": "meta",
        "presentable": false,
        "required": false,
        "system": false,
        "type": "json"
      },
      {
        "cascadeDelete": false,
        "collectionId": "pbc_owui_tags",
        "hidden": false,
        "id": "cs_tags",
        "maxSelect": 100000,
        "minSelect": 0,
        "name": "tags",
        "presentable": false,
        "required": false,
        "system": false,
        "type": "relation"
      },
      {
        "hidden": false,
        "id": "cs_archived",
        "name": "archived",
        "presentable": false,
        "required": false,
        "system": false,
        "type": "bool"
      },
      {
        "hidden": false,
        "id": "cs_pinned",
        "name": "pinned",
        "presentable": false,
        "required": false,
        "system": false,
        "type": "bool"
      },
      {
        "hidden": false,
        "id": "cs_internal",
        "name": "internal",
        "presentable": false,
        "required": false,
        "system": false,
        "type": "bool"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_folder_id",
        "max": 255,
        "min": 0,
        "name": "folder_id",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_share_id",
        "max": 255,
        "min": 0,
        "name": "share_id",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "hidden": false,
        "id": "cs_created_at",
        "max": null,
        "min": null,
        "name": "created_at",
        "onlyInt": false,
        "presentable": false,
        "required": false,
        "system": false,
        "type": "number"
      },
      {
        "hidden": false,
        "id": "cs_updated_at",
        "max": null,
        "min": null,
        "name": "updated_at",
        "onlyInt": false,
        "presentable": false,
        "required": false,
        "system": false,
        "type": "number"
      },
      {
        "hidden": false,
        "id": "cs_version",
        "max": null,
        "min": null,
        "name": "version",
        "onlyInt": false,
        "presentable": false,
        "required": false,
        "system": false,
        "type": "number"
      }
    ],
    "id": "pbc_owui_chats",
    "indexes": [
      "CREATE UNIQUE INDEX idx_owui_chats_id_nocase ON owui_chats (id COLLATE NOCASE)",
      "CREATE UNIQUE INDEX idx_owui_chats_share ON owui_chats (share_id) WHERE share_id != ''",
      "CREATE INDEX idx_owui_chats_user_updated ON owui_chats (user_id, updated_at)",
      "CREATE INDEX idx_owui_chats_user_list ON owui_chats (user_id, internal, archived, updated_at DESC, id, pinned, folder_id, title_lower, tags)"
    ],
    "listRule": null,
    "name": "owui_chats",
    "system": false,
    "type": "base",
    "updateRule": null,
    "viewRule": null
  },
  {
    "createRule": null,
    "deleteRule": null,
    "fields": [
      {
        "autogeneratePattern": "[a-z0-9]{15}",
        "hidden": false,
        "id": "text3208210256",
        "max": 64,
        "min": 1,
        "name": "id",
        "pattern": "^[^/\\\\]+$",
        "presentable": false,
        "primaryKey": true,
        "required": true,
        "system": true,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_chat_id",
        "max": 255,
        "min": 0,
        "name": "chat_id",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_msg_id",
        "max": 255,
        "min": 0,
        "name": "msg_id",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_key",
        "max": 600,
        "min": 0,
        "name": "key",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "hidden": false,
        "id": "cs_created_at",
        "max": null,
        "min": null,
        "name": "created_at",
        "onlyInt": false,
        "presentable": false,
        "required": false,
        "system": false,
        "type": "number"
      },
      {
        "hidden": false,
        "id": "cs_doc",
        "maxSize": 268435456,
        "name": "doc",
        "presentable": false,
        "required": false,
        "system": false,
        "type": "json"
      }
    ],
    "id": "pbc_owui_messages",
    "indexes": [
      "CREATE UNIQUE INDEX idx_owui_messages_id_nocase ON owui_messages (id COLLATE NOCASE)",
      "CREATE INDEX idx_owui_messages_chat ON owui_messages (chat_id, created_at)",
      "CREATE UNIQUE INDEX idx_owui_messages_key ON owui_messages (key)",
      "CREATE INDEX idx_owui_messages_created ON owui_messages (created_at)"
    ],
    "listRule": null,
    "name": "owui_messages",
    "system": false,
    "type": "base",
    "updateRule": null,
    "viewRule": null
  },
  {
    "createRule": null,
    "deleteRule": null,
    "fields": [
      {
        "autogeneratePattern": "[a-z0-9]{15}",
        "hidden": false,
        "id": "text3208210256",
        "max": 255,
        "min": 1,
        "name": "id",
        "pattern": "^[^/\\\\]+$",
        "presentable": false,
        "primaryKey": true,
        "required": true,
        "system": true,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_user_id",
        "max": 255,
        "min": 0,
        "name": "user_id",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_filename",
        "max": 2147483647,
        "min": 0,
        "name": "filename",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_sha256",
        "max": 64,
        "min": 0,
        "name": "sha256",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "hidden": false,
        "id": "cs_size",
        "max": null,
        "min": null,
        "name": "size",
        "onlyInt": false,
        "presentable": false,
        "required": false,
        "system": false,
        "type": "number"
      },
      {
        "hidden": false,
        "id": "cs_blob",
        "maxSelect": 1,
        "maxSize": 68719476736,
        "mimeTypes": [],
        "name": "blob",
        "presentable": false,
        "protected": true,
        "required": false,
        "system": false,
        "thumbs": [],
        "type": "file"
      },
      {
        "hidden": false,
        "id": "cs_doc",
        "maxSize": 268435456,
        "name": "doc",
        "presentable": false,
        "required": false,
        "system": false,
        "type": "json"
      },
      {
        "hidden": false,
        "id": "cs_created_at",
        "max": null,
        "min": null,
        "name": "created_at",
        "onlyInt": false,
        "presentable": false,
        "required": false,
        "system": false,
        "type": "number"
      },
      {
        "hidden": false,
        "id": "cs_updated_at",
        "max": null,
        "min": null,
        "name": "updated_at",
        "onlyInt": false,
        "presentable": false,
        "required": false,
        "system": false,
        "type": "number"
      }
    ],
    "id": "pbc_owui_files",
    "indexes": [
      "CREATE UNIQUE INDEX idx_owui_files_id_nocase ON owui_files (id COLLATE NOCASE)",
      "CREATE INDEX idx_owui_files_user_updated ON owui_files (user_id, updated_at)",
      "CREATE INDEX idx_owui_files_updated ON owui_files (updated_at)"
    ],
    "listRule": null,
    "name": "owui_files",
    "system": false,
    "type": "base",
    "updateRule": null,
    "viewRule": null
  },
  {
    "createRule": null,
    "deleteRule": null,
    "fields": [
      {
        "autogeneratePattern": "[a-z0-9]{15}",
        "hidden": false,
        "id": "text3208210256",
        "max": 64,
        "min": 1,
        "name": "id",
        "pattern": "^[^/\\\\]+$",
        "presentable": false,
        "primaryKey": true,
        "required": true,
        "system": true,
        "type": "text"
      },
      {
        "autogeneratePattern": "",
        "hidden": false,
        "id": "cs_user_id",
        "max": 255,
        "min": 0,
        "name": "user_id",
        "pattern": "",
        "presentable": false,
        "primaryKey": false,
        "required": false,
        "system": false,
        "type": "text"
      },
      {
        "hidden": false,
        "id": "cs_at",
        "max": null,
        "min": null,
        "name": "at",
        "onlyInt": false,
        "presentable": false,
        "required": false,
        "system": false,
        "type": "number"
      },
      {
        "hidden": false,
        "id": "cs_event",
        "maxSize": 268435456,
        "name": "event",
        "presentable": false,
        "required": false,
        "system": false,
        "type": "json"
      }
    ],
    "id": "pbc_owui_changes",
    "indexes": [
      "CREATE UNIQUE INDEX idx_owui_changes_id_nocase ON owui_changes (id COLLATE NOCASE)",
      "CREATE INDEX idx_owui_changes_at ON owui_changes (at)",
      "CREATE INDEX idx_owui_changes_user_at ON owui_changes (user_id, at)"
    ],
    "listRule": null,
    "name": "owui_changes",
    "system": false,
    "type": "base",
    "updateRule": null,
    "viewRule": null
  }
] /* schema:end */;
app.importCollections(collections, false);
const settings = app.settings();
settings.batch.enabled = true;
settings.batch.maxRequests = Math.max(settings.batch.maxRequests, 1000);
settings.batch.timeout = Math.max(settings.batch.timeout, 60);
app.save(settings);
}, (app) => {
for (const name of ["owui_files", "owui_messages", "owui_chats", "owui_tags", "owui_users"]) {
try { app.delete(app.findCollectionByNameOrId(name)); } catch (_) {}
}
});
