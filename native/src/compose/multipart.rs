//! `multipart => [Part]`: a `multipart/form-data` body built with
//! reqwest's multipart form. A part is `{Name, Value}` or a map:
//! `#{name := Name, data => iodata(), file => Path, filename => binary(),
//! content_type => binary(), headers => [header()]}`, with exactly one of
//! `data` and `file`. A file part is opened by the runtime when the
//! request starts and streamed from disk as the connection takes it, so
//! memory stays bounded whatever the file's size; a file that cannot be
//! opened is an `err()` (code `request`) naming it.

use std::path::PathBuf;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::multipart::{Form, Part};
use rustler::{Atom, Binary, MapIterator, NifResult, Term};

use super::bad;
use crate::error::{Code, Error};
use crate::term::{atom_name, bytes_from_iodata, decode_header_list, decode_list, header_map};

rustler::atoms! {
    name,
    data,
    file,
    filename,
    content_type,
    headers,
}

/// One part, checked but not yet built (files are opened later).
pub struct PartSpec {
    name: String,
    source: Source,
    filename: Option<String>,
    content_type: Option<String>,
    headers: HeaderMap,
}

enum Source {
    Data(Bytes),
    File(PathBuf),
}

pub fn decode(t: Term) -> NifResult<Vec<PartSpec>> {
    decode_list(t)
        .map_err(|_| bad("multipart: expected a list of parts"))?
        .into_iter()
        .enumerate()
        .map(|(i, p)| part(p).map_err(|e| bad(format!("multipart: part {i}: {e}"))))
        .collect()
}

fn part(t: Term) -> Result<PartSpec, String> {
    if let Ok((n, v)) = t.decode::<(Term, Term)>() {
        return Ok(PartSpec {
            name: text(n).ok_or("the name must be a UTF-8 binary or an atom")?,
            source: Source::Data(bytes_from_iodata(v).ok_or("the value must be iodata")?),
            filename: None,
            content_type: None,
            headers: HeaderMap::new(),
        });
    }
    let iter = MapIterator::new(t).ok_or("expected {Name, Value} or a map")?;
    let (mut pname, mut pdata, mut path, mut fname, mut ctype, mut hdrs) =
        (None, None, None, None, None, HeaderMap::new());
    for (k, v) in iter {
        match k.decode::<Atom>().map_err(|_| "keys must be atoms")? {
            k if k == name() => {
                pname = Some(text(v).ok_or("name must be a UTF-8 binary or an atom")?)
            }
            k if k == data() => pdata = Some(bytes_from_iodata(v).ok_or("data must be iodata")?),
            k if k == file() => {
                path = Some(file_path(v).ok_or("file must be a path (a binary or a string)")?)
            }
            k if k == filename() => fname = Some(text(v).ok_or("filename must be a UTF-8 binary")?),
            k if k == content_type() => {
                ctype = Some(text(v).ok_or("content_type must be a binary")?)
            }
            k if k == headers() => {
                let list =
                    decode_header_list(v).map_err(|_| "headers must be [{binary(), binary()}]")?;
                hdrs = header_map(&list)?;
            }
            _ => {
                return Err(
                    "unknown key (name, data, file, filename, content_type, headers)".into(),
                )
            }
        }
    }
    let source = match (pdata, path) {
        (Some(d), None) => Source::Data(d),
        (None, Some(p)) => Source::File(p),
        _ => return Err("exactly one of data and file is needed".into()),
    };
    Ok(PartSpec {
        name: pname.ok_or("name is required")?,
        source,
        filename: fname,
        content_type: ctype,
        headers: hdrs,
    })
}

/// Builds the form, opening file parts (on the runtime, not a scheduler).
pub async fn form(parts: Vec<PartSpec>) -> Result<Form, Error> {
    let mut form = Form::new();
    for p in parts {
        let mut part = match p.source {
            Source::Data(b) => {
                let len = b.len() as u64;
                Part::stream_with_length(reqwest::Body::from(b), len)
            }
            Source::File(path) => {
                let cannot = |e: &dyn std::fmt::Display| {
                    Error::new(
                        Code::Request,
                        format!(
                            "multipart part {:?}: cannot read file {}: {e}",
                            p.name,
                            path.display()
                        ),
                    )
                };
                // A directory opens, then fails on the first read, after
                // the request has started: ask first.
                let meta = tokio::fs::metadata(&path).await.map_err(|e| cannot(&e))?;
                if !meta.is_file() {
                    return Err(cannot(&"not a regular file"));
                }
                Part::file(&path).await.map_err(|e| cannot(&e))?
            }
        };
        if let Some(f) = p.filename {
            part = part.file_name(f);
        }
        if let Some(ct) = p.content_type {
            part = part.mime_str(&ct).map_err(|_| {
                Error::new(
                    Code::Request,
                    format!(
                        "multipart part {:?}: content_type {ct:?} is not a MIME type",
                        p.name
                    ),
                )
            })?;
        }
        if !p.headers.is_empty() {
            part = part.headers(p.headers);
        }
        form = form.part(p.name, part);
    }
    Ok(form)
}

fn text(t: Term) -> Option<String> {
    if let Some(name) = atom_name(t) {
        return Some(name);
    }
    let b: Binary = t.decode().ok()?;
    String::from_utf8(b.as_slice().to_vec()).ok()
}

/// A path as a binary or a string (a list of code points).
fn file_path(t: Term) -> Option<PathBuf> {
    if let Ok(b) = t.decode::<Binary>() {
        use std::os::unix::ffi::OsStrExt;
        return Some(PathBuf::from(std::ffi::OsStr::from_bytes(b.as_slice())));
    }
    let chars: Vec<u32> = decode_list(t)
        .ok()?
        .into_iter()
        .map(|c| c.decode().ok())
        .collect::<Option<_>>()?;
    chars
        .into_iter()
        .map(char::from_u32)
        .collect::<Option<String>>()
        .map(PathBuf::from)
}
