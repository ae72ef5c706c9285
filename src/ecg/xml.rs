//! A small XML tree for ECG files, bounded and safe: a document type declaration with an
//! internal subset (and with it every entity declaration, external entity and entity
//! expansion) is refused outright; a bare reference to an external DTD is never fetched; only
//! the five predefined entities and character references are read; depth and element count
//! are bounded. Names are kept without their namespace prefix.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::EcgError;

/// Elements deeper than this are refused.
const MAX_DEPTH: usize = 64;
/// At most this many elements.
const MAX_ELEMENTS: usize = 2_000_000;

#[derive(Debug, Default, Clone)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element at a path of child names.
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |e, n| e.child(n))
    }

    /// The text at a path of child names, trimmed; None when absent or empty.
    pub fn text_at(&self, path: &[&str]) -> Option<String> {
        let t = self.at(path)?.text.trim();
        (!t.is_empty()).then(|| t.to_string())
    }

    /// Every descendant (depth first, document order) named `name`.
    pub fn descendants<'a>(&'a self, name: &'a str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.descendants(name, out);
        }
    }
}

fn local(name: &[u8]) -> String {
    let n = String::from_utf8_lossy(name);
    n.rsplit(':').next().unwrap_or("").to_string()
}

fn malformed(e: impl std::fmt::Display) -> EcgError {
    EcgError::Malformed("XML", e.to_string())
}

fn element(start: &quick_xml::events::BytesStart) -> Result<Element, EcgError> {
    let mut attrs = vec![];
    for a in start.attributes() {
        let a = a.map_err(malformed)?;
        let v = a.unescape_value().map_err(malformed)?;
        attrs.push((local(a.key.as_ref()), v.into_owned()));
    }
    Ok(Element { name: local(start.name().as_ref()), attrs, ..Default::default() })
}

/// Reads `bytes` (UTF-8) into a tree.
pub fn parse(bytes: &[u8]) -> Result<Element, EcgError> {
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Element> = vec![Element::default()];
    let mut count = 0usize;
    let mut buf = Vec::new();
    loop {
        let ev = reader.read_event_into(&mut buf).map_err(malformed)?;
        match ev {
            // A DTD of its own (an internal subset, where entities are declared) is refused.
            // A bare reference to an external DTD (every MUSE export names `restecg.dtd`)
            // is read past and never fetched: without an internal subset no entity exists,
            // and any reference to one is refused below.
            Event::DocType(d) => {
                let decl = d.decode().map_err(malformed)?;
                if decl.contains('[') || decl.contains("ENTITY") {
                    return Err(EcgError::XmlDtd);
                }
            }
            Event::Start(s) => {
                count += 1;
                if stack.len() > MAX_DEPTH || count > MAX_ELEMENTS {
                    return Err(EcgError::Malformed("XML", "nested too deep or too large".into()));
                }
                stack.push(element(&s)?);
            }
            Event::Empty(s) => {
                count += 1;
                let e = element(&s)?;
                stack.last_mut().expect("root").children.push(e);
            }
            Event::End(_) => {
                if stack.len() < 2 {
                    return Err(malformed("unbalanced end tag"));
                }
                let done = stack.pop().expect("two or more");
                stack.last_mut().expect("one").children.push(done);
            }
            Event::Text(t) => {
                let text = t.decode().map_err(malformed)?;
                stack.last_mut().expect("root").text.push_str(&text);
            }
            Event::CData(t) => {
                let text = t.decode().map_err(malformed)?;
                stack.last_mut().expect("root").text.push_str(&text);
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c,
                    None => match r.decode().map_err(malformed)?.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        // No DTD, so no other entity exists: refused, never expanded.
                        _ => return Err(EcgError::XmlDtd),
                    },
                };
                stack.last_mut().expect("root").text.push(ch);
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
        buf.clear();
    }
    if stack.len() != 1 {
        return Err(malformed("the document ends inside an element"));
    }
    let doc = stack.pop().expect("root");
    doc.children.into_iter().next().ok_or_else(|| malformed("no root element"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_tree_without_namespace_prefixes() {
        let doc = parse(br#"<?xml version="1.0"?><h:A xmlns:h="urn:x" k="v &amp; w"><B>t&#65;&lt;</B><C/></h:A>"#)
            .unwrap();
        assert_eq!(doc.name, "A");
        assert_eq!(doc.attr("k"), Some("v & w"));
        assert_eq!(doc.text_at(&["B"]).as_deref(), Some("tA<"));
        assert!(doc.child("C").is_some());
    }

    #[test]
    fn dtds_entities_and_bombs_are_refused_not_expanded() {
        let lol = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><AnnotatedECG>&lol2;</AnnotatedECG>"#;
        assert_eq!(parse(lol).unwrap_err(), EcgError::XmlDtd);
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><RestingECG>&x;</RestingECG>"#;
        assert_eq!(parse(xxe).unwrap_err(), EcgError::XmlDtd);
        // An entity nobody declared is refused too.
        assert_eq!(parse(b"<A>&x;</A>").unwrap_err(), EcgError::XmlDtd);
        // A bare external DTD reference (as MUSE writes) is not fetched, and declares nothing.
        let muse = br#"<?xml version="1.0"?><!DOCTYPE RestingECG SYSTEM "restecg.dtd"><RestingECG>&x;</RestingECG>"#;
        assert_eq!(parse(muse).unwrap_err(), EcgError::XmlDtd);
        let ok = br#"<?xml version="1.0"?><!DOCTYPE RestingECG SYSTEM "restecg.dtd"><RestingECG/>"#;
        assert_eq!(parse(ok).unwrap().name, "RestingECG");
        assert!(parse(b"<A><B></A>").is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse(deep.as_bytes()).is_err());
    }
}
