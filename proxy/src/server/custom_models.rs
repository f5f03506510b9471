//! Custom models (`custom_models.json`, `{p}custom-models` in Redis): a name clients ask for
//! (`id`, or `alias`) that stands for a provider type and an upstream model, with parameter
//! overrides. Listed by `/v1/models`; applied before routing, in the client's own protocol.

use serde_json::{json, Value};

use crate::convert::Protocol;

/// One custom model.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomModel {
    pub id: String,
    pub alias: Option<String>,
    /// Provider type serving it (`actualProvider`, else `provider`).
    pub provider: String,
    /// Model asked of the upstream (`actualModel`, else the id).
    pub model: String,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
}

/// Every custom model, as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomModels(pub Vec<CustomModel>);

impl CustomModels {
    /// Reads the reference's array; entries without an id or a provider are skipped (and named).
    pub fn parse(v: &Value) -> (Self, Vec<String>) {
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for (i, m) in v.as_array().into_iter().flatten().enumerate() {
            match Self::one(m) {
                Some(cm) => out.push(cm),
                None => skipped.push(format!("entry {i}: needs \"id\" and \"provider\" (or \"actualProvider\")")),
            }
        }
        (Self(out), skipped)
    }

    fn one(m: &Value) -> Option<CustomModel> {
        let text =
            |k: &str| m.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(String::from);
        let id = text("id")?;
        let provider = text("actualProvider").or_else(|| text("provider"))?;
        Some(CustomModel {
            model: text("actualModel").unwrap_or_else(|| id.clone()),
            alias: text("alias"),
            provider,
            max_tokens: m.get("maxTokens").and_then(Value::as_u64).filter(|n| *n > 0),
            temperature: m.get("temperature").and_then(Value::as_f64),
            top_p: m.get("topP").and_then(Value::as_f64),
            id,
        })
    }

    /// The custom model a client's model name stands for.
    pub fn find(&self, name: &str) -> Option<&CustomModel> {
        self.0.iter().find(|m| m.id == name || m.alias.as_deref() == Some(name))
    }

    /// Names `/v1/models` lists (ids and aliases).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|m| std::iter::once(m.id.as_str()).chain(m.alias.as_deref()))
    }
}

impl CustomModel {
    /// Sets the upstream model and this model's parameters in `body` (a request of `protocol`).
    pub fn apply(&self, protocol: Protocol, body: &mut Value) {
        if protocol != Protocol::Gemini {
            body["model"] = Value::String(self.model.clone());
        }
        let (max_field, container) = match protocol {
            Protocol::OpenAiChat | Protocol::Anthropic => ("max_tokens", None),
            Protocol::OpenAiResponses => ("max_output_tokens", None),
            Protocol::Gemini => ("maxOutputTokens", Some("generationConfig")),
        };
        let (temp, top_p) =
            if protocol == Protocol::Gemini { ("temperature", "topP") } else { ("temperature", "top_p") };
        let target = match container {
            Some(c) => {
                if !body.get(c).is_some_and(Value::is_object) {
                    body[c] = json!({});
                }
                &mut body[c]
            }
            None => body,
        };
        if let Some(n) = self.max_tokens {
            target[max_field] = json!(n);
        }
        if let Some(t) = self.temperature {
            target[temp] = json!(t);
        }
        if let Some(p) = self.top_p {
            target[top_p] = json!(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_entries_route_and_override() {
        let v = json!([
            {"id": "fast", "alias": "f", "provider": "openai-custom", "actualProvider": "openai-custom-b",
             "actualModel": "gpt-4o-mini", "maxTokens": 64, "temperature": 0.2, "topP": 0.9},
            {"id": "plain", "provider": "claude-custom"},
            {"name": "no id"},
        ]);
        let (models, skipped) = CustomModels::parse(&v);
        assert_eq!((models.0.len(), skipped.len()), (2, 1));
        let fast = models.find("f").expect("by alias");
        assert_eq!((fast.provider.as_str(), fast.model.as_str()), ("openai-custom-b", "gpt-4o-mini"));
        assert_eq!(models.find("plain").map(|m| m.model.as_str()), Some("plain"));
        assert_eq!(models.names().collect::<Vec<_>>(), ["fast", "f", "plain"]);

        let mut chat = json!({"model": "fast", "messages": [], "temperature": 1.0});
        fast.apply(Protocol::OpenAiChat, &mut chat);
        assert_eq!(
            (chat["model"].clone(), chat["max_tokens"].clone(), chat["temperature"].clone()),
            (json!("gpt-4o-mini"), json!(64), json!(0.2))
        );
        assert_eq!(chat["top_p"], 0.9);
        let mut gem = json!({"contents": []});
        fast.apply(Protocol::Gemini, &mut gem);
        assert_eq!(gem["generationConfig"], json!({"maxOutputTokens": 64, "temperature": 0.2, "topP": 0.9}));
        let mut resp = json!({"model": "fast", "input": "x"});
        fast.apply(Protocol::OpenAiResponses, &mut resp);
        assert_eq!(resp["max_output_tokens"], 64);
    }
}
