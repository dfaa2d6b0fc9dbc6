//! A row as [`Cell`]s in its table's column order, and the one reader that turns such a row
//! straight into a typed record ([`read`]): the path every typed list and get takes.
//!
//! A [`Row`] map costs a key allocation and a map insert per column, and a record read from
//! it through `serde_json::from_value` costs a walk of that map plus a rebuild of every JSON
//! object in it. A backend that decodes its cells itself (SQL) hands them over in column order
//! instead, JSON columns as their text, and [`read`] deserializes the record from them
//! directly: column names are the table's `&'static str`s, values move into the record's
//! fields, and a JSON column is parsed once, into the field's own type. Backends that only
//! have maps keep working through [`from_row`] (what [`RowStore::select_cells`] does by
//! default).
//!
//! [`RowStore::select_cells`]: super::RowStore::select_cells

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{Column, Row, Table};

/// One cell of a row read in column order.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A value as a [`Row`] holds it (text, integer, boolean, parsed JSON, `null`).
    Value(Value),
    /// A JSON column's text, not parsed yet: the record reading it parses it into its field.
    JsonText(String),
}

/// The cells of `row` in `table`'s column order (a missing column is `null`).
pub fn from_row(table: &Table, mut row: Row) -> Vec<Cell> {
    table
        .columns
        .iter()
        .map(|c| Cell::Value(row.remove(c.name).unwrap_or(Value::Null)))
        .collect()
}

/// The [`Row`] of `cells` (in `table`'s column order), JSON text parsed; an error names the
/// column whose text is not JSON.
pub fn into_row(table: &Table, cells: Vec<Cell>) -> serde_json::Result<Row> {
    table
        .columns
        .iter()
        .zip(cells)
        .map(|(column, cell)| {
            let value = match cell {
                Cell::Value(v) => v,
                Cell::JsonText(text) => serde_json::from_str(&text)
                    .map_err(|e| not_json::<serde_json::Error>(table, column, e))?,
            };
            Ok((column.name.to_owned(), value))
        })
        .collect()
}

/// The record `cells` (in `table`'s column order) hold, deserialized straight from them. An
/// error names the row by its primary key (and the column, when one does not read).
pub fn read<T: DeserializeOwned>(
    table: &'static Table,
    mut cells: Vec<Cell>,
) -> serde_json::Result<T> {
    T::deserialize(Record {
        table,
        columns: table.columns.iter(),
        cells: cells.iter_mut(),
        value: None,
    })
    .map_err(|e| {
        // Key cells are read by copy (see `next_value_seed`), so they are still there.
        let key: Vec<String> = table
            .primary_key
            .iter()
            .filter_map(|k| table.columns.iter().position(|c| c.name == *k))
            .map(|i| match cells.get(i) {
                Some(Cell::Value(Value::String(s))) => s.clone(),
                Some(Cell::Value(v)) => v.to_string(),
                _ => String::new(),
            })
            .collect();
        de::Error::custom(format_args!("row {:?}: {e}", key.join("/")))
    })
}

fn not_json<E: de::Error>(table: &Table, column: &Column, e: serde_json::Error) -> E {
    E::custom(format_args!(
        "{}.{} does not hold valid JSON: {e}",
        table.name, column.name
    ))
}

/// A row as a map from its column names to its cells.
struct Record<'de> {
    table: &'static Table,
    columns: std::slice::Iter<'static, Column>,
    cells: std::slice::IterMut<'de, Cell>,
    value: Option<(&'static Column, &'de mut Cell)>,
}

impl<'de> Deserializer<'de> for Record<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> serde_json::Result<V::Value> {
        visitor.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for Record<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> serde_json::Result<Option<K::Value>> {
        match (self.columns.next(), self.cells.next()) {
            (Some(column), Some(cell)) => {
                self.value = Some((column, cell));
                seed.deserialize(BorrowedStrDeserializer::new(column.name))
                    .map(Some)
            }
            _ => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> serde_json::Result<V::Value> {
        let (column, cell) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a row's value asked for before its column"))?;
        match cell {
            // The key stays in its cell, for naming the row in an error.
            Cell::Value(key) if self.table.primary_key.contains(&column.name) => {
                seed.deserialize(key.clone())
            }
            cell => seed.deserialize(CellDeserializer {
                table: self.table,
                column,
                cell,
            }),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.columns.len().min(self.cells.len()))
    }
}

/// One cell as the deserializer of its record field: a value moves into the field, JSON text
/// is parsed into it.
struct CellDeserializer<'de> {
    table: &'static Table,
    column: &'static Column,
    cell: &'de mut Cell,
}

/// Each `deserialize_*` of [`CellDeserializer`] hands the visitor to the cell's own
/// deserializer: the value's (taken out of the cell), or a JSON parser over the text, which
/// must hold one JSON value and nothing after it.
macro_rules! forward_to_cell {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self $(, $arg: $ty)*, visitor: V) -> serde_json::Result<V::Value> {
                let (table, column) = (self.table, self.column);
                match self.cell {
                    Cell::Value(value) => std::mem::take(value).$method($($arg,)* visitor),
                    Cell::JsonText(text) => {
                        let text: &'de String = text;
                        let mut parser = serde_json::Deserializer::from_str(text.as_str());
                        let out = (&mut parser)
                            .$method($($arg,)* visitor)
                            .and_then(|out| parser.end().map(|()| out));
                        out.map_err(|e| if e.is_syntax() || e.is_eof() {
                            not_json(table, column, e)
                        } else {
                            e
                        })
                    }
                }
            }
        )*
    };
}

impl<'de> Deserializer<'de> for CellDeserializer<'de> {
    type Error = serde_json::Error;

    forward_to_cell! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::tables::{FEEDBACK, NOTE};
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Note {
        id: String,
        user_id: Option<String>,
        title: Option<String>,
        data: Option<Value>,
        meta: Option<Value>,
        created_at: Option<i64>,
        updated_at: Option<i64>,
    }

    fn note_cells(data: Cell, meta: Cell) -> Vec<Cell> {
        vec![
            Cell::Value(json!("n1")),
            Cell::Value(json!("u1")),
            Cell::Value(Value::Null),
            data,
            meta,
            Cell::Value(json!(5)),
            Cell::Value(json!(6)),
        ]
    }

    /// JSON text and parsed values read into the same record; JSON `null` text is `None`.
    #[test]
    fn cells_read_into_a_record_like_its_row() {
        let text = note_cells(
            Cell::JsonText(r#"{"content": {"md": "hi \u00e9"}, "n": [1, 2.5]}"#.into()),
            Cell::JsonText("null".into()),
        );
        let values = note_cells(
            Cell::Value(json!({"content": {"md": "hi é"}, "n": [1, 2.5]})),
            Cell::Value(Value::Null),
        );
        let row = into_row(&NOTE, text.clone()).expect("a row");
        let from_text: Note = read(&NOTE, text).expect("from text");
        let from_values: Note = read(&NOTE, values.clone()).expect("from values");
        let from_map: Note = serde_json::from_value(Value::Object(row.clone())).expect("map");
        assert_eq!(from_text, from_values);
        assert_eq!(from_text, from_map);
        assert_eq!(from_text.meta, None);
        assert_eq!(from_row(&NOTE, row), values);
    }

    /// Text that is not JSON is an error naming the table and column.
    #[test]
    fn bad_json_text_names_its_column() {
        let cells = note_cells(Cell::JsonText("{not json".into()), Cell::Value(Value::Null));
        let err = read::<Note>(&NOTE, cells.clone()).expect_err("not JSON");
        assert!(
            err.to_string()
                .contains(r#"row "n1": note.data does not hold valid JSON"#),
            "{err}"
        );
        let err = into_row(&NOTE, cells).expect_err("not JSON");
        assert!(
            err.to_string()
                .contains("note.data does not hold valid JSON"),
            "{err}"
        );
        let trailing = note_cells(Cell::JsonText("{} x".into()), Cell::Value(Value::Null));
        assert!(read::<Note>(&NOTE, trailing).is_err());
    }

    /// A cell of the wrong kind for its field is an error, not a panic.
    #[test]
    fn a_cell_of_another_kind_is_an_error() {
        let mut cells = note_cells(Cell::Value(Value::Null), Cell::Value(Value::Null));
        cells[5] = Cell::Value(json!("five"));
        assert!(read::<Note>(&NOTE, cells).is_err());
        let short: serde_json::Result<Note> = read(&NOTE, vec![Cell::Value(json!("x"))]);
        assert_eq!(short.expect("missing nullable columns are none").id, "x");
        let no_id: serde_json::Result<Note> = read(&FEEDBACK, Vec::new());
        assert!(no_id.is_err(), "a missing required column");
    }
}
