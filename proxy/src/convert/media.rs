//! Image sources: `data:` URLs (OpenAI) ⇄ base64 + media type (Anthropic, Gemini).

use super::ir::ImageSource;

/// Splits `data:<media type>;base64,<data>`; other URLs stay URLs.
pub(crate) fn from_url(url: &str) -> ImageSource {
    parse_data_url(url).unwrap_or_else(|| ImageSource::Url(url.to_string()))
}

fn parse_data_url(url: &str) -> Option<ImageSource> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some(ImageSource::Base64 {
        media_type: if media_type.is_empty() { "application/octet-stream".to_string() } else { media_type.to_string() },
        data: data.to_string(),
    })
}

/// The source as a URL, inlining base64 data as a `data:` URL.
pub(crate) fn to_url(src: &ImageSource) -> String {
    match src {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url(u) => u.clone(),
    }
}

/// Best-effort media type for a remote URL, from its extension (Gemini `fileData` needs one).
pub(crate) fn guess_media_type(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or_default().to_ascii_lowercase();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else {
        "image/jpeg"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_url_round_trips() {
        let url = "data:image/png;base64,iVBORw0KGgo=";
        let src = from_url(url);
        assert_eq!(src, ImageSource::Base64 { media_type: "image/png".into(), data: "iVBORw0KGgo=".into() });
        assert_eq!(to_url(&src), url);
    }

    #[test]
    fn non_base64_urls_stay_urls() {
        for url in ["https://x/y.png", "data:text/plain,hello", "data:"] {
            assert_eq!(from_url(url), ImageSource::Url(url.into()));
        }
    }
}
