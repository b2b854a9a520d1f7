//! Reads a chart drawn by `telemetry_server::api::chart` back as XML: its bars and bar labels.
//! Shared by the renderer's unit tests (included with `#[path]`) and `tests/all/dashboard.rs`.
#![allow(dead_code)]

use quick_xml::events::Event;

/// A bar read back from the SVG.
#[derive(Debug)]
pub struct Bar {
    /// `data-key`, or `None` for the "other" bar.
    pub key: Option<String>,
    /// For the "other" bar: how many keys it sums.
    pub keys: Option<usize>,
    pub value: f64,
    pub width: f64,
}

/// Parses the SVG as XML (any error fails the test): its bars and the texts of its bar labels.
pub fn read_chart(svg: &str) -> (Vec<Bar>, Vec<String>) {
    let mut reader = quick_xml::Reader::from_str(svg);
    let (mut bars, mut labels) = (Vec::new(), Vec::new());
    let mut in_label = false;
    let mut root_seen = false;
    loop {
        match reader
            .read_event()
            .unwrap_or_else(|e| panic!("not XML: {e}\n{svg}"))
        {
            Event::Start(e) if !root_seen => {
                assert_eq!(e.name().as_ref(), b"svg", "the root element is <svg>");
                root_seen = true;
            }
            Event::Empty(e) if e.name().as_ref() == b"rect" => {
                let attr = |name: &str| {
                    e.try_get_attribute(name).unwrap().map(|a| {
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .unwrap()
                            .into_owned()
                    })
                };
                if attr("class").is_some_and(|c| c.split(' ').any(|c| c == "bar")) {
                    bars.push(Bar {
                        key: attr("data-key"),
                        keys: attr("data-keys").map(|n| n.parse().unwrap()),
                        value: attr("data-value").unwrap().parse().unwrap(),
                        width: attr("width").unwrap().parse().unwrap(),
                    });
                }
            }
            Event::Start(e) if e.name().as_ref() == b"text" => {
                in_label = e
                    .try_get_attribute("class")
                    .unwrap()
                    .is_some_and(|a| a.value.as_ref() == b"label");
                if in_label {
                    labels.push(String::new());
                }
            }
            Event::Text(t) if in_label => labels
                .last_mut()
                .unwrap()
                .push_str(&t.xml10_content().unwrap()),
            Event::GeneralRef(r) if in_label => {
                let entity = format!("&{};", r.decode().unwrap());
                labels
                    .last_mut()
                    .unwrap()
                    .push_str(&quick_xml::escape::unescape(&entity).unwrap());
            }
            Event::End(e) if e.name().as_ref() == b"text" => in_label = false,
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(root_seen, "no <svg> element");
    (bars, labels)
}
