//! The SQL lexer of the DDL parser: [`tokenize`] splits statement text into tokens, and the
//! token cursor walks them for the statement and column type parsers.

use super::Name;

/// A token of SQL text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// A word or a quoted identifier (`quoted`).
    Ident(String, bool),
    /// A string literal.
    Str(String),
    /// A number.
    Num(String),
    /// Punctuation.
    Punct(char),
}

impl Tok {
    pub(super) fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Ident(s, false) if s.eq_ignore_ascii_case(kw))
    }
    pub(super) fn is_punct(&self, c: char) -> bool {
        matches!(self, Tok::Punct(p) if *p == c)
    }
}

/// Split SQL into tokens; comments are dropped, but the content of executable comments
/// (`/*!50100 ... */`, `/*M!100100 ... */`) is kept, as the server runs it.
pub fn tokenize(sql: &str) -> Vec<Tok> {
    let s = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'#' || (c == b'-' && s.get(i + 1) == Some(&b'-')) {
            while i < s.len() && s[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && s.get(i + 1) == Some(&b'*') {
            let exec = s.get(i + 2) == Some(&b'!')
                || (s.get(i + 2) == Some(&b'M') && s.get(i + 3) == Some(&b'!'));
            if exec {
                i += if s[i + 2] == b'M' { 4 } else { 3 };
                while i < s.len() && s[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                i += 2;
                while i + 1 < s.len() && !(s[i] == b'*' && s[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
        } else if c == b'*' && s.get(i + 1) == Some(&b'/') {
            i += 2; // end of an executable comment
        } else if c == b'`' || c == b'"' || c == b'\'' {
            let mut v = Vec::new();
            i += 1;
            while i < s.len() {
                if s[i] == c {
                    if s.get(i + 1) == Some(&c) {
                        v.push(c);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                if s[i] == b'\\' && c != b'`' && i + 1 < s.len() {
                    let e = s[i + 1];
                    v.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'0' => 0,
                        b'r' => b'\r',
                        _ => e,
                    });
                    i += 2;
                    continue;
                }
                v.push(s[i]);
                i += 1;
            }
            let text = String::from_utf8_lossy(&v).into_owned();
            out.push(if c == b'\'' {
                Tok::Str(text)
            } else {
                Tok::Ident(text, true)
            });
        } else if c.is_ascii_digit() {
            let st = i;
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Num(String::from_utf8_lossy(&s[st..i]).into_owned()));
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80 {
            let st = i;
            while i < s.len()
                && (s[i].is_ascii_alphanumeric() || s[i] == b'_' || s[i] == b'$' || s[i] >= 0x80)
            {
                i += 1;
            }
            out.push(Tok::Ident(
                String::from_utf8_lossy(&s[st..i]).into_owned(),
                false,
            ));
        } else {
            out.push(Tok::Punct(c as char));
            i += 1;
        }
    }
    out
}

/// A cursor over tokens, for the parsers.
pub(super) struct P<'a> {
    pub(super) t: &'a [Tok],
    pub(super) i: usize,
}

impl<'a> P<'a> {
    pub(super) fn peek(&self) -> Option<&'a Tok> {
        self.t.get(self.i)
    }
    /// The next token, consumed; at the end `None`, and the position stays at the end (a
    /// position past the end made later slicing panic: found by fuzzing).
    pub(super) fn next(&mut self) -> Option<&'a Tok> {
        let t = self.t.get(self.i);
        if t.is_some() {
            self.i += 1;
        }
        t
    }
    pub(super) fn kw(&mut self, kw: &str) -> bool {
        if self.peek().is_some_and(|t| t.is_kw(kw)) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Whether the next token is one of `kws` (not consumed).
    pub(super) fn at_any(&self, kws: &[&str]) -> bool {
        self.peek().is_some_and(|t| kws.iter().any(|k| t.is_kw(k)))
    }
    pub(super) fn kws(&mut self, kws: &[&str]) -> bool {
        let save = self.i;
        for k in kws {
            if !self.kw(k) {
                self.i = save;
                return false;
            }
        }
        true
    }
    pub(super) fn punct(&mut self, c: char) -> bool {
        if self.peek().is_some_and(|t| t.is_punct(c)) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    pub(super) fn ident(&mut self) -> Option<String> {
        match self.next()? {
            Tok::Ident(s, _) => Some(s.clone()),
            Tok::Str(s) => Some(s.clone()),
            _ => None,
        }
    }
    pub(super) fn name(&mut self) -> Option<Name> {
        let first = self.ident()?;
        if self.punct('.') {
            let t = self.ident()?;
            Some(Name {
                schema: Some(first),
                table: t,
            })
        } else {
            Some(Name {
                schema: None,
                table: first,
            })
        }
    }
    /// Skip to the next top-level `,` or the closing `)` (not consumed) or the end.
    pub(super) fn skip_item(&mut self) {
        let mut depth = 0i32;
        while let Some(t) = self.peek() {
            if t.is_punct('(') {
                depth += 1;
            } else if t.is_punct(')') {
                if depth == 0 {
                    return;
                }
                depth -= 1;
            } else if t.is_punct(',') && depth == 0 {
                return;
            }
            self.i += 1;
        }
    }
    pub(super) fn paren_list(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.punct('(') {
            return out;
        }
        loop {
            match self.next() {
                Some(Tok::Ident(s, _)) | Some(Tok::Str(s)) => {
                    out.push(s.clone());
                    // skip a prefix length or ASC/DESC
                    self.skip_item();
                }
                Some(Tok::Punct(',')) => {}
                Some(Tok::Punct(')')) | None => break,
                _ => {}
            }
        }
        out
    }
}
