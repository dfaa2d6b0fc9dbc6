//! A [`RowQuery`](chatstore_core::rows::RowQuery)'s conditions and order as a PocketBase
//! filter and sort, every value through [`crate::filter`].
//!
//! Nulls: see [`super::codec`]. An integer or text null is stored as `""`, which sorts before
//! every other value, and a nullable text or boolean column sorts by its `__null` field first:
//! so ascending puts nulls first and descending puts them last, as [`rows::sort_rows`] does.
//! Comparisons (`<`, `<=`, ...) on a nullable column also ask for "not null" (SQL: a
//! comparison with `NULL` is unknown, never true).
//!
//! [`rows::sort_rows`]: chatstore_core::rows::sort_rows

use chatstore_core::rows::{Column, ColumnKind, Cond, Dir, Table};
use chatstore_core::{Error, Result};
use serde_json::Value;

use super::codec::{field_name, has_null_field, null_field, text_form};
use crate::filter;

/// PocketBase refuses a filter of more than about 3500 characters or 200 expressions; a
/// filter above these limits is split or relaxed (see [`super`]).
pub const MAX_FILTER_CHARS: usize = 3000;
/// See [`MAX_FILTER_CHARS`].
pub const MAX_FILTER_ATOMS: usize = 150;

/// A filter expression: always true, never true, or PocketBase filter text of `atoms`
/// comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Every record.
    True,
    /// No record.
    False,
    /// Filter text.
    Text {
        /// The filter.
        text: String,
        /// How many comparisons it holds.
        atoms: usize,
    },
}

impl Expr {
    fn atom(text: String) -> Expr {
        Expr::Text { text, atoms: 1 }
    }

    /// All of `parts`.
    pub fn all(parts: Vec<Expr>) -> Expr {
        Self::join(parts, " && ", Expr::False, Expr::True)
    }

    /// Any of `parts`.
    pub fn any(parts: Vec<Expr>) -> Expr {
        Self::join(parts, " || ", Expr::True, Expr::False)
    }

    fn join(parts: Vec<Expr>, op: &str, absorbing: Expr, neutral: Expr) -> Expr {
        let mut texts: Vec<(String, usize)> = Vec::new();
        for part in parts {
            if part == absorbing {
                return part;
            }
            if let Expr::Text { text, atoms } = part {
                texts.push((text, atoms));
            }
        }
        if texts.len() == 1 {
            let (text, atoms) = texts.remove(0);
            return Expr::Text { text, atoms };
        }
        if texts.is_empty() {
            return neutral;
        }
        let atoms = texts.iter().map(|(_, n)| n).sum();
        let text = texts
            .into_iter()
            .map(|(t, n)| if n > 1 { format!("({t})") } else { t })
            .collect::<Vec<_>>()
            .join(op);
        Expr::Text { text, atoms }
    }

    /// Whether PocketBase takes this filter (its length and expression count are in bounds).
    pub fn fits(&self) -> bool {
        match self {
            Expr::Text { text, atoms } => {
                text.len() <= MAX_FILTER_CHARS && *atoms <= MAX_FILTER_ATOMS
            }
            Expr::True | Expr::False => true,
        }
    }

    /// The filter text (`""` for every record); `None` for no record.
    pub fn text(&self) -> Option<&str> {
        match self {
            Expr::True => Some(""),
            Expr::False => None,
            Expr::Text { text, .. } => Some(text),
        }
    }
}

fn column(table: &Table, name: &str) -> Result<&'static Column> {
    table
        .column(name)
        .ok_or_else(|| Error::invalid(format!("{} has no column {name:?}", table.name)))
}

fn is_null(c: &Column) -> Expr {
    if !c.nullable {
        return Expr::False;
    }
    match c.kind {
        ColumnKind::Int => Expr::atom(format!("{} = \"\"", c.name)),
        ColumnKind::Json | ColumnKind::JsonText => Expr::atom(format!("{} = null", c.name)),
        ColumnKind::Text | ColumnKind::Bool => Expr::atom(format!("{} = true", null_field(c.name))),
    }
}

fn not_null(c: &Column) -> Expr {
    if !c.nullable {
        return Expr::True;
    }
    match c.kind {
        ColumnKind::Int => Expr::atom(format!("{} != \"\"", c.name)),
        ColumnKind::Json | ColumnKind::JsonText => Expr::atom(format!("{} != null", c.name)),
        ColumnKind::Text | ColumnKind::Bool => {
            Expr::atom(format!("{} = false", null_field(c.name)))
        }
    }
}

/// The right-hand side of a comparison with `value` (never null here).
fn operand(table: &Table, c: &Column, value: &Value) -> Result<String> {
    match (c.kind, value) {
        (ColumnKind::Bool, Value::Bool(b)) => Ok(b.to_string()),
        _ => text_form(c, value)
            .map(|s| filter::literal(&s))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}.{} cannot be compared with {value}",
                    table.name, c.name
                ))
            }),
    }
}

/// Whether a non-null `value` is stored like a null of `c` (`""`, false) in the column's own
/// field, so that an equality must also check the null field.
fn looks_null(c: &Column, value: &Value) -> bool {
    has_null_field(c) && matches!(value, Value::String(s) if s.is_empty())
        || has_null_field(c) && value == &Value::Bool(false)
}

fn eq(table: &Table, c: &Column, value: &Value) -> Result<Expr> {
    if value.is_null() {
        return Ok(is_null(c));
    }
    let atom = Expr::atom(format!("{} = {}", field_name(c), operand(table, c, value)?));
    Ok(if looks_null(c, value) {
        Expr::all(vec![atom, not_null(c)])
    } else {
        atom
    })
}

fn ne(table: &Table, c: &Column, value: &Value) -> Result<Expr> {
    if value.is_null() {
        return Ok(not_null(c));
    }
    let atom = Expr::atom(format!(
        "{} != {}",
        field_name(c),
        operand(table, c, value)?
    ));
    Ok(if looks_null(c, value) {
        Expr::any(vec![atom, is_null(c)])
    } else {
        atom
    })
}

fn compare(table: &Table, c: &Column, op: &str, value: &Value) -> Result<Expr> {
    let atom = Expr::atom(format!(
        "{} {op} {}",
        field_name(c),
        operand(table, c, value)?
    ));
    Ok(Expr::all(vec![atom, not_null(c)]))
}

/// One condition as a filter expression.
pub fn cond(table: &Table, cond: &Cond) -> Result<Expr> {
    match cond {
        Cond::Eq(name, v) => eq(table, column(table, name)?, v),
        Cond::Ne(name, v) => ne(table, column(table, name)?, v),
        Cond::In(name, values) => {
            let c = column(table, name)?;
            let parts = values
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| eq(table, c, v))
                .collect::<Result<Vec<_>>>()?;
            Ok(Expr::any(parts))
        }
        Cond::IsNull(name) => Ok(is_null(column(table, name)?)),
        Cond::NotNull(name) => Ok(not_null(column(table, name)?)),
        Cond::Gt(name, v) => compare(table, column(table, name)?, ">", v),
        Cond::Ge(name, v) => compare(table, column(table, name)?, ">=", v),
        Cond::Lt(name, v) => compare(table, column(table, name)?, "<", v),
        Cond::Le(name, v) => compare(table, column(table, name)?, "<=", v),
        Cond::ContainsCi(name, needle) => {
            let c = column(table, name)?;
            if needle.is_empty() {
                return Ok(not_null(c));
            }
            // PocketBase: `~` is `LIKE '%v%' ESCAPE '\'`, ASCII case-insensitive like
            // SQLite's LIKE; `filter::contains` escapes `%`, `_` and `\`.
            Ok(Expr::atom(format!(
                "{} ~ {}",
                field_name(c),
                filter::contains(needle)
            )))
        }
        Cond::Any(alternatives) => Ok(Expr::any(
            alternatives
                .iter()
                .map(|a| all(table, a))
                .collect::<Result<Vec<_>>>()?,
        )),
    }
}

/// All conditions of a list as one filter expression.
pub fn all(table: &Table, conds: &[Cond]) -> Result<Expr> {
    Ok(Expr::all(
        conds
            .iter()
            .map(|c| cond(table, c))
            .collect::<Result<Vec<_>>>()?,
    ))
}

/// The PocketBase sort of an order: nulls first ascending and last descending, then the id.
pub fn sort(table: &Table, order: &[(&'static str, Dir)]) -> Result<String> {
    let mut keys = Vec::with_capacity(order.len() * 2 + 1);
    for (name, dir) in order {
        let c = column(table, name)?;
        let nulls = has_null_field(c).then(|| null_field(c.name));
        match dir {
            Dir::Asc => {
                if let Some(n) = nulls {
                    keys.push(format!("-{n}"));
                }
                keys.push(field_name(c).to_owned());
            }
            Dir::Desc => {
                if let Some(n) = nulls {
                    keys.push(n);
                }
                keys.push(format!("-{}", field_name(c)));
            }
        }
    }
    // The primary key is the last key (as in core's `sort_rows`): the id, then the other key
    // columns of a composite key (folder: `user_id`).
    for key in table.primary_key {
        if !order.iter().any(|(name, _)| name == key) {
            keys.push(field_name(column(table, key)?).to_owned());
        }
    }
    Ok(keys.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatstore_core::rows::tables::{CHANNEL, FOLDER};
    use serde_json::json;

    #[test]
    fn conditions_compile_with_escaped_values_and_null_guards() {
        let f = |c: Cond| cond(&FOLDER, &c).expect("compiles");
        assert_eq!(
            f(Cond::Eq("name", json!("a\" || id != \""))),
            Expr::atom("name = \"a\\\" || id != \\\"\"".into())
        );
        assert_eq!(
            f(Cond::IsNull("parent_id")).text(),
            Some("parent_id__null = true")
        );
        assert_eq!(f(Cond::IsNull("name")), Expr::False);
        assert_eq!(
            f(Cond::Eq("parent_id", json!(""))).text(),
            Some("parent_id = \"\" && parent_id__null = false")
        );
        assert_eq!(f(Cond::In("name", vec![])), Expr::False);
        assert_eq!(
            f(Cond::Lt("created_at", json!(5))).text(),
            Some("created_at < \"0000000000000000005\"")
        );
        assert_eq!(
            f(Cond::Eq("id", json!("a/b"))).text(),
            Some("owui_id = \"a/b\"")
        );
    }

    #[test]
    fn orders_put_nulls_first_ascending_and_last_descending() {
        assert_eq!(
            sort(&CHANNEL, &[("name", Dir::Asc), ("updated_at", Dir::Desc)]).expect("sort"),
            "-name__null,name,-updated_at,owui_id"
        );
        assert_eq!(
            sort(&CHANNEL, &[("name", Dir::Desc)]).expect("sort"),
            "name__null,-name,owui_id"
        );
    }
}
