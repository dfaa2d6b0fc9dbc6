//! The collections of Open WebUI's remaining tables, generated from the [`Table`] specs: the
//! boot schema ([`crate::schema::ensure`]) and `pb_migrations/1764547200_chatstore_rows.js`
//! both come from [`collections_json`] (a test keeps the migration identical).
//!
//! One base collection per table, named `owui_rows_<table>` (with the store's prefix): the
//! `owui_rows_` part keeps them apart from the aggregates' `owui_users`, `owui_chats`,
//! `owui_messages`, ... (Open WebUI's channel `message` table is `owui_rows_message`).
//!
//! Fields: see [`super::codec`]. Indexes: the record id `COLLATE NOCASE` (PocketBase's id
//! check), `owui_id` (unique; with the other primary key columns where the key has more, as
//! `folder`'s `(id, user_id)`), one per [`Table::indexes`] entry, and one unique index per
//! [`Table::unique`] entry that only covers rows whose unique columns are all non-null (SQL:
//! `NULL`s never clash; PocketBase would otherwise see two stored `""` as equal).
//!
//! No relation fields: Open WebUI's foreign keys stay plain text fields, because a relation
//! refuses a write whose target is missing (a migration writes tables in any order, and
//! Open WebUI itself keeps dangling ids, e.g. `knowledge_file.file_id` of a deleted file), and
//! its value would be the escaped record id rather than Open WebUI's id. Cascades are done by
//! chatstore's models, the same on every backend, and those to chats and files by the chat and
//! file deletes (core's `rows::cascades`, see `TxOp::DeleteWhere`'s `cascades`).

use chatstore_core::rows::{ALL_TABLES, Column, ColumnKind, Table};
use serde_json::{Value, json};

use super::codec::{ID_FIELD, has_null_field, null_field};
use crate::schema::{self, Collections};

/// The longest stored id (an escaped id takes up to three times its length).
const ID_MAX: u64 = 1024;
/// PocketBase: a text field's `max: 0` means 5000 characters.
const TEXT_MAX: u64 = 2_147_483_647;
/// An encoded integer: 19 digits, `-` first when negative, `""` for null.
const INT_PATTERN: &str = "^(-?[0-9]{19})?$";

fn field(column: &Column) -> Value {
    let name = column.name;
    match column.kind {
        ColumnKind::Text => schema::text_field(name, TEXT_MAX),
        ColumnKind::Int => json!({"id": format!("cs_{name}"), "name": name, "type": "text",
            "min": 0, "max": 20, "pattern": INT_PATTERN, "autogeneratePattern": "",
            "required": false, "primaryKey": false, "system": false, "hidden": false,
            "presentable": false}),
        ColumnKind::Bool => schema::bool_field(name),
        ColumnKind::Json | ColumnKind::JsonText => schema::json_field(name),
    }
}

fn columns_sql(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The unique index on a table's primary key: `owui_id`, or `owui_id` and the other key
/// columns (folder: `user_id`), under another name so an import replaces the index on
/// `owui_id` alone that earlier versions made.
fn key_index(name: &str, table: &Table) -> String {
    if !super::codec::composite_key(table) {
        return format!("CREATE UNIQUE INDEX idx_{name}_owui_id ON {name} (`{ID_FIELD}`)");
    }
    let columns: Vec<&str> = table
        .primary_key
        .iter()
        .map(|c| if *c == "id" { ID_FIELD } else { c })
        .collect();
    format!(
        "CREATE UNIQUE INDEX idx_{name}_key ON {name} ({})",
        columns_sql(&columns)
    )
}

/// The collection of one table.
pub fn collection_json(c: &Collections, table: &Table) -> Value {
    let name = c.rows(table);
    let mut fields = vec![
        schema::id_field(ID_MAX),
        schema::text_field(ID_FIELD, ID_MAX),
    ];
    for column in table.columns.iter().filter(|c| c.name != "id") {
        fields.push(field(column));
        if has_null_field(column) {
            fields.push(schema::bool_field(&null_field(column.name)));
        }
    }
    let mut indexes = vec![key_index(&name, table)];
    for columns in table.indexes {
        indexes.push(format!(
            "CREATE INDEX idx_{name}_{} ON {name} ({})",
            columns.join("_"),
            columns_sql(columns)
        ));
    }
    for columns in table.unique {
        let present: Vec<String> = columns
            .iter()
            .filter_map(|c| table.column(c))
            .filter(|c| c.nullable)
            .map(|c| match c.kind {
                ColumnKind::Int => format!("`{}` != ''", c.name),
                _ => format!("`{}` = FALSE", null_field(c.name)),
            })
            .collect();
        let filter = if present.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", present.join(" AND "))
        };
        indexes.push(format!(
            "CREATE UNIQUE INDEX uq_{name}_{} ON {name} ({}){filter}",
            columns.join("_"),
            columns_sql(columns)
        ));
    }
    schema::collection(&name, fields, indexes)
}

/// The collections of every table of [`ALL_TABLES`], as `PUT /api/collections/import` takes
/// them.
pub fn collections_json(c: &Collections) -> Vec<Value> {
    ALL_TABLES
        .iter()
        .map(|table| collection_json(c, table))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatstore_core::rows::tables::PROMPT;

    /// pb_migrations/ ships exactly the row collections the adapter imports at boot.
    #[test]
    fn rows_migration_holds_the_boot_schema() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/pb_migrations/1764547200_chatstore_rows.js"
        );
        let schema = serde_json::to_string_pretty(&collections_json(
            &Collections::new("").expect("empty prefix"),
        ))
        .expect("schema serialises");
        if std::env::var_os("CHATSTORE_WRITE_MIGRATION").is_some() {
            std::fs::write(path, migration_js(&schema)).expect("write migration");
        }
        let js = std::fs::read_to_string(path).expect("migration file exists");
        let start =
            js.find("/* schema:begin */").expect("begin marker") + "/* schema:begin */".len();
        let end = js.find("/* schema:end */").expect("end marker");
        let shipped: Value = serde_json::from_str(js[start..end].trim()).expect("schema is JSON");
        let expected: Value = serde_json::from_str(&schema).expect("json");
        assert_eq!(
            shipped, expected,
            "run with CHATSTORE_WRITE_MIGRATION=1 to regenerate"
        );
        assert_eq!(
            js,
            migration_js(&schema),
            "the code around the schema is generated too"
        );
    }

    fn migration_js(schema: &str) -> String {
        let names = ALL_TABLES
            .iter()
            .rev()
            .map(|t| format!("\"owui_rows_{}\"", t.name))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "/// <reference path=\"../pb_data/types.d.ts\" />\n\
// chatstore: the collections of Open WebUI's remaining tables (folders, knowledge, notes,\n\
// prompts, models, groups, channels, feedback, ...), generated from the Table specs of\n\
// chatstore-core by `CHATSTORE_WRITE_MIGRATION=1 cargo test -p chatstore-pocketbase\n\
// rows_migration_holds_the_boot_schema`. The adapter imports the same collections at start-up.\n\
migrate((app) => {{\n\
  const collections = /* schema:begin */ {schema} /* schema:end */;\n\
  app.importCollections(collections, false);\n\
}}, (app) => {{\n\
  for (const name of [{names}]) {{\n\
    try {{ app.delete(app.findCollectionByNameOrId(name)); }} catch (_) {{}}\n\
  }}\n\
}});\n"
        )
    }

    #[test]
    fn generated_fields_never_clash_with_columns() {
        let c = Collections::new("").expect("prefix");
        for table in ALL_TABLES {
            let collection = collection_json(&c, table);
            let mut names: Vec<&str> = collection["fields"]
                .as_array()
                .expect("fields")
                .iter()
                .filter_map(|f| f["name"].as_str())
                .collect();
            let n = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), n, "{}", table.name);
        }
    }

    #[test]
    fn nullable_uniques_only_cover_non_null_rows() {
        let c = Collections::new("").expect("prefix");
        let indexes = collection_json(&c, &PROMPT)["indexes"].to_string();
        assert!(
            indexes.contains(
                "CREATE UNIQUE INDEX uq_owui_rows_prompt_command ON owui_rows_prompt (`command`) WHERE `command__null` = FALSE"
            ),
            "{indexes}"
        );
    }
}
