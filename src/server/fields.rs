//! Typed, validated reads of a JSON request object's fields. Every failure is a 400 that
//! names the field by its path (`messages[2].content[0].image_url.url`), so the client
//! sees what to fix. `null` counts as absent, as OpenAI clients send it for unset fields.
use serde_json::{Map, Value};

use super::errors::ApiError;

/// One JSON object and where it sits in the request.
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    path: String,
}

/// A request body as JSON; anything else is a 400 `invalid_json`.
pub fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

/// JSON's name for the kind of a value, for error messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn bad_field(path: &str, expected: &str, value: &Value) -> ApiError {
    ApiError::invalid(
        "invalid_field",
        format!("'{path}' must be {expected}, got {}", kind_of(value)),
    )
}

impl<'a> Fields<'a> {
    /// `value` as an object; `path` names it in errors (empty for the request body).
    pub fn of(value: &'a Value, path: &str) -> Result<Self, ApiError> {
        match value {
            Value::Object(object) => Ok(Self {
                object,
                path: path.to_owned(),
            }),
            other if path.is_empty() => Err(ApiError::invalid(
                "invalid_body",
                format!(
                    "the request body must be a JSON object, got {}",
                    kind_of(other)
                ),
            )),
            other => Err(bad_field(path, "an object", other)),
        }
    }

    /// The full path of the field `name`.
    pub fn path_of(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The field's value, `None` when absent or null.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name).filter(|v| !v.is_null())
    }

    pub fn required(&self, name: &str) -> Result<&'a Value, ApiError> {
        self.get(name).ok_or_else(|| {
            ApiError::invalid(
                "missing_field",
                format!("'{}' is required", self.path_of(name)),
            )
        })
    }

    pub fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(bad_field(&self.path_of(name), "a string", other)),
        }
    }

    pub fn required_string(&self, name: &str) -> Result<&'a str, ApiError> {
        let value = self.required(name)?;
        value
            .as_str()
            .ok_or_else(|| bad_field(&self.path_of(name), "a string", value))
    }

    pub fn object(&self, name: &str) -> Result<Option<&'a Map<String, Value>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(object)) => Ok(Some(object)),
            Some(other) => Err(bad_field(&self.path_of(name), "an object", other)),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(bad_field(&self.path_of(name), "true or false", other)),
        }
    }

    /// A number within `min..=max`.
    pub fn number(&self, name: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let expected = format!("a number from {min} to {max}");
        match value.as_f64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            Some(n) => Err(ApiError::invalid(
                "invalid_field",
                format!("'{}' must be {expected}, got {n}", self.path_of(name)),
            )),
            None => Err(bad_field(&self.path_of(name), &expected, value)),
        }
    }

    /// An integer within `min..=max`.
    pub fn integer(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let expected = format!("an integer from {min} to {max}");
        match (value.as_u64(), value.as_i64()) {
            (Some(n), _) if (min..=max).contains(&n) => Ok(Some(n)),
            (Some(n), _) => Err(ApiError::invalid(
                "invalid_field",
                format!("'{}' must be {expected}, got {n}", self.path_of(name)),
            )),
            (None, Some(n)) => Err(ApiError::invalid(
                "invalid_field",
                format!("'{}' must be {expected}, got {n}", self.path_of(name)),
            )),
            (None, None) => Err(bad_field(&self.path_of(name), &expected, value)),
        }
    }

    /// Any 64-bit integer, signed or not, as its two's-complement bits (for seeds).
    pub fn integer_bits(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        value
            .as_u64()
            .or_else(|| value.as_i64().map(|n| n as u64))
            .map(Some)
            .ok_or_else(|| bad_field(&self.path_of(name), "an integer", value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_name_the_field_path() {
        let value = json!({"url": 3, "n": -1, "t": 2.5});
        let fields = Fields::of(&value, "messages[0].content[1]").unwrap();
        let error = fields.string("url").unwrap_err();
        assert_eq!(error.status, 400);
        assert_eq!(
            error.message,
            "'messages[0].content[1].url' must be a string, got a number"
        );
        let error = fields.integer("n", 1, 10).unwrap_err();
        assert!(error.message.contains("got -1"), "{}", error.message);
        let error = fields.number("t", 0.0, 2.0).unwrap_err();
        assert!(
            error.message.contains("from 0 to 2, got 2.5"),
            "{}",
            error.message
        );
    }

    #[test]
    fn null_counts_as_absent() {
        let value = json!({"temperature": null});
        let fields = Fields::of(&value, "").unwrap();
        assert_eq!(fields.number("temperature", 0.0, 2.0).unwrap(), None);
        assert!(fields.required("temperature").is_err());
    }

    #[test]
    fn negative_seed_keeps_its_bits() {
        let value = json!({"seed": -1});
        let fields = Fields::of(&value, "").unwrap();
        assert_eq!(fields.integer_bits("seed").unwrap(), Some(u64::MAX));
    }
}
