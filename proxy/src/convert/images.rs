//! The OpenAI Images API (`/v1/images/generations`, `/v1/images/edits`): its requests, the chat
//! request that asks an image-capable chat model for the same picture, and the answers back.
//!
//! Accounts with an OpenAI images API (`openai-custom`, `openaiResponses-custom`, `forward-api`)
//! get the request as the client sent it; every other provider gets a one-message chat request
//! through the IR, and the images in its answer (Gemini `inlineData`, OpenAI-style
//! `message.images`, Responses `image_generation_call`) become the Images API's `data` items.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::error::ConvertError;
use super::ir::{ImageSource, Part};
use super::media;

/// Images per request, as the reference caps `n`.
pub const MAX_IMAGES: u64 = 4;
/// Largest input image of an edit.
pub const MAX_IMAGE_BYTES: usize = 20 << 20;
/// Input images per edit.
pub const MAX_INPUT_IMAGES: usize = 16;

/// How the client wants each image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Base64 in `b64_json`.
    B64Json,
    /// A URL in `url` (a `data:` URL when the upstream gave bytes).
    Url,
}

/// One file of a multipart form.
#[derive(Debug, Clone, PartialEq)]
pub struct FilePart {
    /// The form field (`image`, `image[]`, `mask`).
    pub field: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Bytes,
}

/// A multipart form as sent: its text fields and files, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Form {
    pub fields: Vec<(String, String)>,
    pub files: Vec<FilePart>,
}

impl Form {
    fn text(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Marks a response that is an images API's own answer (it needs no conversion).
#[derive(Debug, Clone, Copy)]
pub struct NativeAnswer;

/// A parsed Images API request.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageCall {
    pub model: String,
    pub prompt: String,
    pub n: u64,
    pub format: Format,
    pub size: Option<String>,
    /// Generations: the JSON body as sent.
    pub json: Option<Map<String, Value>>,
    /// Edits: the form as sent.
    pub form: Option<Form>,
}

impl ImageCall {
    pub fn is_edit(&self) -> bool {
        self.form.is_some()
    }

    /// The generation body for an OpenAI images API, with the upstream model.
    pub fn generation_body(&self, model: &str) -> Value {
        let mut body = self.json.clone().unwrap_or_default();
        body.insert("model".into(), model.into());
        Value::Object(body)
    }

    /// The edit form for an OpenAI images API, with the upstream model.
    pub fn edit_form(&self, model: &str) -> Form {
        let mut form = self.form.clone().unwrap_or_default();
        form.fields.retain(|(k, _)| k != "model");
        form.fields.push(("model".into(), model.into()));
        form
    }

    /// The input images of an edit (the mask is not sent to chat models, as the reference).
    fn input_images(&self) -> impl Iterator<Item = &FilePart> {
        self.form.iter().flat_map(|f| f.files.iter()).filter(|f| f.field == "image" || f.field == "image[]")
    }

    /// An OpenAI Chat request asking a chat model for one image.
    pub fn chat_request(&self) -> Value {
        use base64::Engine;
        let mut prompt = self.prompt.clone();
        if let Some(size) = &self.size {
            prompt.push_str(&format!("\n\n(Image size: {size})"));
        }
        let mut content = vec![json!({"type": "text", "text": prompt})];
        for img in self.input_images() {
            let media_type = img.content_type.clone().unwrap_or_else(|| "image/png".into());
            let data = base64::engine::general_purpose::STANDARD.encode(&img.data);
            let url = media::to_url(&ImageSource::Base64 { media_type, data });
            content.push(json!({"type": "image_url", "image_url": {"url": url}}));
        }
        json!({"model": self.model, "stream": false, "messages": [{"role": "user", "content": content}]})
    }
}

fn field_error(field: &str, expected: &'static str) -> ConvertError {
    ConvertError::wrong_type(field, expected)
}

fn parse_n(v: Option<&Value>) -> Result<u64, ConvertError> {
    match v {
        None | Some(Value::Null) => Ok(1),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Ok(n.min(MAX_IMAGES)),
            _ => Err(field_error("n", "an integer of at least 1")),
        },
    }
}

fn parse_format(v: Option<&str>) -> Result<Format, ConvertError> {
    match v {
        None | Some("b64_json") => Ok(Format::B64Json),
        Some("url") => Ok(Format::Url),
        Some(other) => Err(ConvertError::invalid_value("response_format", format!("{other:?} (b64_json or url)"))),
    }
}

fn required_text(v: Option<&str>, field: &str) -> Result<String, ConvertError> {
    match v.map(str::trim) {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(ConvertError::Missing(field.into())),
    }
}

/// A `POST /v1/images/generations` JSON body.
pub fn parse_generation(body: &Value) -> Result<ImageCall, ConvertError> {
    let o = body.as_object().ok_or_else(|| field_error("body", "a JSON object"))?;
    let text = |k: &str| -> Result<Option<&str>, ConvertError> {
        match o.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(field_error(k, "a string")),
        }
    };
    if o.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(ConvertError::Unsupported("stream".into()));
    }
    Ok(ImageCall {
        model: required_text(text("model")?, "model")?,
        prompt: required_text(text("prompt")?, "prompt")?,
        n: parse_n(o.get("n"))?,
        format: parse_format(text("response_format")?)?,
        size: text("size")?.map(str::to_string),
        json: Some(o.clone()),
        form: None,
    })
}

/// A `POST /v1/images/edits` multipart form.
pub fn parse_edit(form: Form) -> Result<ImageCall, ConvertError> {
    if form.text("stream") == Some("true") {
        return Err(ConvertError::Unsupported("stream".into()));
    }
    let n = match form.text("n").map(str::trim) {
        None | Some("") => 1,
        Some(s) => parse_n(Some(&s.parse::<u64>().map_or(Value::Bool(false), Value::from)))?,
    };
    let call = ImageCall {
        model: required_text(form.text("model"), "model")?,
        prompt: required_text(form.text("prompt"), "prompt")?,
        n,
        format: parse_format(form.text("response_format"))?,
        size: form.text("size").map(str::to_string),
        json: None,
        form: Some(form),
    };
    let images: Vec<&FilePart> = call.input_images().collect();
    if images.is_empty() {
        return Err(ConvertError::Missing("image".into()));
    }
    if images.len() > MAX_INPUT_IMAGES {
        let value = format!("{} files (at most {MAX_INPUT_IMAGES})", images.len());
        return Err(ConvertError::invalid_value("image", value));
    }
    for img in images {
        if img.data.len() > MAX_IMAGE_BYTES {
            let value = format!("of {} bytes (at most {MAX_IMAGE_BYTES})", img.data.len());
            return Err(ConvertError::invalid_value("image", value));
        }
        if img.content_type.as_deref().is_some_and(|t| !t.starts_with("image/") && t != "application/octet-stream") {
            return Err(field_error("image", "an image file"));
        }
    }
    Ok(call)
}

/// Parts of an edit form beyond which it is refused.
const MAX_FORM_PARTS: usize = 64;

/// A `multipart/form-data` body's text fields and files (multer does the parsing).
pub async fn read_form(content_type: &str, raw: Bytes) -> Result<Form, ConvertError> {
    let bad = |e: multer::Error| ConvertError::InvalidMultipart(e.to_string());
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| ConvertError::InvalidMultipart("images/edits takes a multipart/form-data body".into()))?;
    let body = futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(raw) });
    let mut mp = multer::Multipart::new(body, boundary);
    let mut form = Form::default();
    while let Some(field) = mp.next_field().await.map_err(bad)? {
        if form.fields.len() + form.files.len() >= MAX_FORM_PARTS {
            return Err(ConvertError::InvalidMultipart(format!("more than {MAX_FORM_PARTS} parts")));
        }
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(ToString::to_string);
        let data = field.bytes().await.map_err(bad)?;
        if filename.is_some() || name == "image" || name == "image[]" || name == "mask" {
            form.files.push(FilePart { field: name, filename, content_type, data });
        } else {
            let text = String::from_utf8(data.to_vec())
                .map_err(|_| ConvertError::InvalidMultipart(format!("form field `{name}` is not UTF-8 text")))?;
            form.fields.push((name, text));
        }
    }
    Ok(form)
}

/// The images and text of a chat answer (OpenAI Chat shape).
pub fn from_chat_answer(answer: &Value) -> Result<(Vec<ImageSource>, String), ConvertError> {
    let resp = super::openai_chat::response::decode(answer)?;
    let mut images = Vec::new();
    let mut text = String::new();
    for p in resp.parts {
        match p {
            Part::Image(src) => images.push(src),
            Part::Text(t) => text.push_str(&t),
            _ => {}
        }
    }
    Ok((images, text))
}

/// One `data` item of an Images API answer.
pub fn data_item(src: &ImageSource, format: Format, revised_prompt: Option<&str>) -> Value {
    let mut item = match (src, format) {
        (ImageSource::Base64 { data, .. }, Format::B64Json) => json!({"b64_json": data}),
        // Only a URL was given: the client gets it whatever it asked for.
        (src, _) => json!({"url": media::to_url(src)}),
    };
    if let (Some(t), Some(o)) = (revised_prompt.filter(|t| !t.trim().is_empty()), item.as_object_mut()) {
        o.insert("revised_prompt".into(), t.trim().into());
    }
    item
}

/// The answer of an OpenAI images API: its `data` items, or `None` if it is not one.
pub fn native_items(answer: &Value) -> Option<&Vec<Value>> {
    answer.get("data").and_then(Value::as_array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn png(n: usize) -> FilePart {
        FilePart {
            field: "image".into(),
            filename: Some("a.png".into()),
            content_type: Some("image/png".into()),
            data: Bytes::from(vec![7u8; n]),
        }
    }

    fn form(fields: &[(&str, &str)], files: Vec<FilePart>) -> Form {
        Form { fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), files }
    }

    #[test]
    fn generation_requests_are_checked_and_n_is_capped() {
        let ok = parse_generation(&json!({"model": "m", "prompt": "a cat", "n": 9, "response_format": "url"}))
            .expect("valid");
        assert_eq!((ok.n, ok.format), (MAX_IMAGES, Format::Url));
        assert_eq!(ok.generation_body("up")["model"], "up");
        for (body, field) in [
            (json!({"model": "m"}), "prompt"),
            (json!({"prompt": "p"}), "model"),
            (json!({"model": "m", "prompt": "  "}), "prompt"),
            (json!({"model": "m", "prompt": 5}), "prompt"),
            (json!({"model": "m", "prompt": "p", "n": 0}), "n"),
            (json!({"model": "m", "prompt": "p", "n": "2"}), "n"),
            (json!({"model": "m", "prompt": "p", "response_format": "gif"}), "response_format"),
            (json!({"model": "m", "prompt": "p", "stream": true}), "stream"),
            (json!(["not an object"]), "body"),
        ] {
            let e = parse_generation(&body).expect_err("refused");
            assert!(e.to_string().contains(field), "{body}: {e}");
        }
    }

    #[test]
    fn edits_need_an_image_and_keep_the_form_for_image_apis() {
        let call = parse_edit(form(&[("model", "m"), ("prompt", "p"), ("n", "2")], vec![png(10)])).expect("valid");
        assert_eq!(call.n, 2);
        let f = call.edit_form("up");
        assert_eq!(f.text("model"), Some("up"));
        assert_eq!(f.files.len(), 1);
        let chat = call.chat_request();
        assert_eq!(chat["messages"][0]["content"][1]["type"], "image_url");
        assert!(chat["messages"][0]["content"][1]["image_url"]["url"]
            .as_str()
            .unwrap_or("")
            .starts_with("data:image/png;base64,"));
        let mask = FilePart { field: "mask".into(), ..png(3) };
        let call = parse_edit(form(&[("model", "m"), ("prompt", "p")], vec![png(1), mask])).expect("valid");
        assert_eq!(call.chat_request()["messages"][0]["content"].as_array().map(Vec::len), Some(2), "mask not sent");
        for (fields, files, field) in [
            (vec![("model", "m"), ("prompt", "p")], vec![], "image"),
            (vec![("model", "m")], vec![png(1)], "prompt"),
            (vec![("model", "m"), ("prompt", "p"), ("n", "x")], vec![png(1)], "n"),
            (vec![("model", "m"), ("prompt", "p")], vec![png(MAX_IMAGE_BYTES + 1)], "image"),
            (
                vec![("model", "m"), ("prompt", "p")],
                vec![FilePart { content_type: Some("text/plain".into()), ..png(1) }],
                "image",
            ),
        ] {
            let e = parse_edit(form(&fields, files)).expect_err("refused");
            assert!(e.to_string().contains(field), "{fields:?}: {e}");
        }
    }

    #[test]
    fn chat_answers_give_their_images() {
        let answer = json!({"choices": [{"message": {"role": "assistant", "content": "here",
            "images": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]}}]});
        let (images, text) = from_chat_answer(&answer).expect("decoded");
        assert_eq!(images, vec![ImageSource::Base64 { media_type: "image/png".into(), data: "QUJD".into() }]);
        assert_eq!(text, "here");
        assert_eq!(
            data_item(&images[0], Format::B64Json, Some("here")),
            json!({"b64_json": "QUJD", "revised_prompt": "here"})
        );
        assert_eq!(data_item(&images[0], Format::Url, None), json!({"url": "data:image/png;base64,QUJD"}));
        assert!(from_chat_answer(&json!({"data": []})).is_err());
    }

    fn image_json() -> impl Strategy<Value = Value> {
        let keys = ["model", "prompt", "n", "response_format", "size", "stream", "quality"];
        let extra = vec![json!("url"), json!("b64_json"), json!(2), json!(true)];
        crate::test_json::json_value(prop::sample::select(keys.map(String::from).to_vec()), extra)
    }

    #[test]
    fn every_backends_image_answer_reaches_the_images_api() {
        use crate::convert::{convert_response, Protocol};
        let gemini = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "a cat"}, {"inlineData": {"mimeType": "image/webp", "data": "V0VCUA=="}}]}, "finishReason": "STOP"}]});
        let responses = json!({"id": "r", "status": "completed", "output": [
            {"type": "image_generation_call", "id": "ig", "status": "completed", "output_format": "webp", "result": "V0VCUA=="}]});
        for (backend, body) in [(Protocol::Gemini, gemini), (Protocol::OpenAiResponses, responses)] {
            let chat = convert_response(backend, Protocol::OpenAiChat, &body).expect("converted");
            let (images, _) = from_chat_answer(&chat).expect("decoded");
            let want = ImageSource::Base64 { media_type: "image/webp".into(), data: "V0VCUA==".into() };
            assert_eq!(images, vec![want], "{backend:?}: {chat}");
            // …and back: a Gemini or Responses client of an image model gets the image too.
            for client in [Protocol::Gemini, Protocol::OpenAiResponses] {
                let out = convert_response(Protocol::OpenAiChat, client, &chat).expect("converted");
                assert!(out.to_string().contains("V0VCUA=="), "{client:?}: {out}");
            }
        }
    }

    fn form_body(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, file, data) in parts {
            out.extend_from_slice(b"--B\r\n");
            let disp = match file {
                Some(f) => format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: image/png\r\n\r\n"),
                None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n"),
            };
            out.extend_from_slice(disp.as_bytes());
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--B--\r\n");
        out
    }

    #[test]
    fn forms_are_read_with_their_files() {
        let body = form_body(&[("model", None, b"m"), ("prompt", None, b"p"), ("image[]", Some("a.png"), b"\x89PNG")]);
        let form =
            futures::executor::block_on(read_form("multipart/form-data; boundary=B", body.into())).expect("form");
        assert_eq!(form.fields, vec![("model".into(), "m".into()), ("prompt".into(), "p".into())]);
        assert_eq!((form.files[0].field.as_str(), form.files[0].data.as_ref()), ("image[]", b"\x89PNG".as_ref()));
        let bad = futures::executor::block_on(read_form("application/json", Bytes::new())).expect_err("not multipart");
        assert!(bad.to_string().contains("multipart"));
        let binary = form_body(&[("prompt", None, b"\xff\xfe")]);
        let e = futures::executor::block_on(read_form("multipart/form-data; boundary=B", binary.into()))
            .expect_err("utf-8");
        assert!(e.to_string().contains("prompt"), "{e}");
    }

    proptest! {
        #[test]
        fn any_body_is_read_or_refused(body in proptest::collection::vec(any::<u8>(), 0..400), cut in 0usize..200) {
            // Random bytes, and a valid form cut anywhere.
            let valid = form_body(&[("model", None, b"m"), ("image", Some("a.png"), &body)]);
            for raw in [body.clone(), valid[..cut.min(valid.len())].to_vec(), valid.clone()] {
                let read = futures::executor::block_on(read_form("multipart/form-data; boundary=B", raw.into()));
                if let Err(e) = read {
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }

        #[test]
        fn any_json_gives_a_call_or_a_named_error(v in image_json()) {
            match parse_generation(&v) {
                Ok(c) => prop_assert!(c.n >= 1 && c.n <= MAX_IMAGES && !c.prompt.is_empty()),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn any_form_gives_a_call_or_a_named_error(
            fields in proptest::collection::vec(("(model|prompt|n|response_format|size|stream|x)", ".{0,8}"), 0..8),
            sizes in proptest::collection::vec(0usize..64, 0..3),
        ) {
            let files = sizes.into_iter().map(png).collect();
            let f = Form { fields, files };
            match parse_edit(f) {
                Ok(c) => prop_assert!(c.n >= 1 && c.n <= MAX_IMAGES && !c.model.is_empty()),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
