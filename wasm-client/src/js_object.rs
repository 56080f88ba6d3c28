//! Reading the plain option objects the app passes in, field by field, with errors that
//! name the field. Hand-written rather than serde-based: it keeps serde's deserializer
//! machinery and float formatting out of the wasm binary.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// A field of an options object that has the wrong type or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be {expected}")]
pub struct FieldError {
    /// The field's path, e.g. `will.qos`.
    pub field: String,
    /// What it must be, e.g. `an integer from 0 to 2`.
    pub expected: &'static str,
}

/// An options object, or nothing (`undefined`/`null`: every field is absent).
pub struct JsObject {
    value: Option<JsValue>,
    path: String,
}

impl JsObject {
    /// Reads `value` as an options object; `path` names it in errors (empty at top level).
    pub fn new(value: &JsValue, path: &str) -> Result<Self, FieldError> {
        let value = match value {
            v if v.is_undefined() || v.is_null() => None,
            v if v.is_object() => Some(v.clone()),
            _ => {
                return Err(FieldError {
                    field: if path.is_empty() {
                        "options".into()
                    } else {
                        path.into()
                    },
                    expected: "an object",
                });
            }
        };
        Ok(Self {
            value,
            path: path.into(),
        })
    }

    fn error(&self, key: &str, expected: &'static str) -> FieldError {
        let field = if self.path.is_empty() {
            key.into()
        } else {
            [self.path.as_str(), key].join(".")
        };
        FieldError { field, expected }
    }

    /// The field's value, `None` when absent, `undefined` or `null`.
    fn get(&self, key: &str) -> Option<JsValue> {
        let object = self.value.as_ref()?;
        let field = Reflect::get(object, &JsValue::from_str(key)).ok()?;
        (!field.is_undefined() && !field.is_null()).then_some(field)
    }

    /// A string field.
    pub fn string(&self, key: &str) -> Result<Option<String>, FieldError> {
        self.get(key)
            .map(|v| v.as_string().ok_or_else(|| self.error(key, "a string")))
            .transpose()
    }

    /// A string field that must be present.
    pub fn required_string(&self, key: &str) -> Result<String, FieldError> {
        self.string(key)?.ok_or_else(|| self.error(key, "a string"))
    }

    /// A boolean field.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, FieldError> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.error(key, "true or false")))
            .transpose()
    }

    /// A whole, non-negative number that fits in `u32`, or at most `max`.
    pub fn integer(&self, key: &str, max: u32, expected: &'static str) -> Result<Option<u32>, FieldError> {
        self.get(key)
            .map(|v| match v.as_f64() {
                Some(n) if n.fract() == 0.0 && (0.0..=f64::from(max)).contains(&n) => Ok(n as u32),
                _ => Err(self.error(key, expected)),
            })
            .transpose()
    }

    /// A QoS field: 0, 1 or 2.
    pub fn qos(&self, key: &str) -> Result<Option<u8>, FieldError> {
        Ok(self.integer(key, 2, "0, 1 or 2")?.map(|q| q as u8))
    }

    /// A nested options object (absent fields read as absent).
    pub fn object(&self, key: &str) -> Result<Option<JsObject>, FieldError> {
        let path = if self.path.is_empty() {
            key.to_owned()
        } else {
            [self.path.as_str(), key].join(".")
        };
        self.get(key).map(|v| JsObject::new(&v, &path)).transpose()
    }

    /// `[name, value]` string pairs, as an array of pairs or as an object's own entries.
    pub fn string_pairs(&self, key: &str) -> Result<Vec<(String, String)>, FieldError> {
        const EXPECTED: &str = "an array of [name, value] string pairs or an object of strings";
        let Some(value) = self.get(key) else {
            return Ok(Vec::new());
        };
        let entries = if Array::is_array(&value) {
            value.unchecked_into::<Array>()
        } else if value.is_object() {
            Object::entries(value.unchecked_ref())
        } else {
            return Err(self.error(key, EXPECTED));
        };
        entries
            .iter()
            .map(|pair| {
                let pair: Array = pair.dyn_into().map_err(|_| self.error(key, EXPECTED))?;
                match (pair.get(0).as_string(), pair.get(1).as_string()) {
                    (Some(name), Some(value)) if pair.length() == 2 => Ok((name, value)),
                    _ => Err(self.error(key, EXPECTED)),
                }
            })
            .collect()
    }
}
