//! PTX text → a module of functions whose bodies are statements with line numbers.
//! Covers what nvcc 13 emits at `-O3` for compute_80: module directives, `.entry` and
//! `.func` (with return parameters), `.param`/`.reg`/`.shared`/`.local` declarations,
//! labels, guards, scopes, and operands (registers, immediates including `0f`/`0d` floats,
//! `[base+imm]` addresses, `{a, b}` vectors, call lists).

use crate::SimError;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Int(u64),
    F32(u32),
    F64(u64),
    Punct(char),
    Str,
}

struct Lexer {
    toks: Vec<(Tok, u32)>,
    pos: usize,
}

fn lex(src: &str) -> Result<Vec<(Tok, u32)>, SimError> {
    let b = src.as_bytes();
    let (mut i, mut line) = (0usize, 1u32);
    let mut out = Vec::new();
    let word = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'$' | b'%' | b'.');
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    line += (b[i] == b'\n') as u32;
                    i += 1;
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
                i += 1;
                out.push((Tok::Str, line));
            }
            c if c.is_ascii_digit() => {
                let s = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
                out.push((number(&src[s..i], line)?, line));
            }
            c if word(c) => {
                let s = i;
                while i < b.len() && word(b[i]) {
                    i += 1;
                }
                out.push((Tok::Word(src[s..i].to_string()), line));
            }
            _ => {
                out.push((Tok::Punct(c as char), line));
                i += 1;
            }
        }
    }
    Ok(out)
}

fn number(s: &str, line: u32) -> Result<Tok, SimError> {
    let bad = || SimError::new(format!("line {line}: bad number `{s}`"));
    let t = s.trim_end_matches(['U', 'u']);
    let tok = if let Some(h) = t.strip_prefix("0f").or_else(|| t.strip_prefix("0F")) {
        Tok::F32(u32::from_str_radix(h, 16).map_err(|_| bad())?)
    } else if let Some(h) = t.strip_prefix("0d").or_else(|| t.strip_prefix("0D")) {
        Tok::F64(u64::from_str_radix(h, 16).map_err(|_| bad())?)
    } else if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Tok::Int(u64::from_str_radix(h, 16).map_err(|_| bad())?)
    } else if t.contains('.') || t.contains('e') {
        Tok::F64(t.parse::<f64>().map_err(|_| bad())?.to_bits())
    } else {
        Tok::Int(t.parse::<u64>().map_err(|_| bad())?)
    };
    Ok(tok)
}

/// One operand as written.
#[derive(Clone, Debug)]
pub enum Operand {
    /// A register, special register, symbol or label name.
    Name(String),
    Int(i64),
    F32(u32),
    F64(u64),
    /// `[base+off]`; base `None` for an absolute address.
    Addr(Option<String>, i64),
    /// `{a, b, ...}`; `_` is a sink.
    Vector(Vec<String>),
    /// `(a, b)` in a call.
    List(Vec<String>),
    /// `_`, the sink.
    Sink,
}

#[derive(Clone, Debug)]
pub enum Stmt {
    Open,
    Close,
    Reg {
        names: Vec<String>,
    },
    /// `.shared`/`.local`/`.param` variable; `len` is the array length (1 for scalars,
    /// 0 for `[]`).
    Var(VarDecl),
    Label(String),
    Inst(InstText),
}

#[derive(Clone, Debug)]
pub struct VarDecl {
    pub space: String,
    pub align: u32,
    pub ty: String,
    pub name: String,
    pub len: u32,
    pub line: u32,
}

impl VarDecl {
    pub fn bytes(&self) -> usize {
        type_bytes(&self.ty) * self.len as usize
    }
}

#[derive(Clone, Debug)]
pub struct InstText {
    pub guard: Option<(String, bool)>,
    pub opcode: String,
    pub operands: Vec<Operand>,
    pub line: u32,
}

#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    pub is_entry: bool,
    pub params: Vec<VarDecl>,
    pub rets: Vec<VarDecl>,
    pub body: Option<Vec<Stmt>>,
    pub line: u32,
}

#[derive(Debug, Default)]
pub struct Module {
    pub functions: Vec<Function>,
    /// Module-scope `.shared` variables (static and `.extern` dynamic).
    pub shared: Vec<(VarDecl, bool)>,
}

pub fn type_bytes(ty: &str) -> usize {
    match ty {
        ".pred" => 1,
        ".b8" | ".u8" | ".s8" => 1,
        ".b16" | ".u16" | ".s16" | ".f16" | ".bf16" => 2,
        ".b64" | ".u64" | ".s64" | ".f64" => 8,
        _ => 4,
    }
}

pub fn parse(src: &str) -> Result<Module, SimError> {
    let mut lx = Lexer { toks: lex(src)?, pos: 0 };
    let mut m = Module::default();
    while let Some((t, line)) = lx.next() {
        let Tok::Word(w) = t else {
            return Err(lx.err(line, format!("unexpected `{t:?}` at module scope")));
        };
        match w.as_str() {
            // These take the rest of their line, with no `;`.
            ".version" | ".target" | ".address_size" | ".file" | ".loc" => lx.skip_line(line),
            ".pragma" => lx.skip_stmt(),
            ".visible" | ".weak" | ".extern" if lx.peek_word(".shared") => {
                let extern_ = w == ".extern";
                lx.next();
                let v = lx.var(".shared".into(), line)?;
                m.shared.push((v, extern_));
            }
            ".visible" | ".weak" | ".extern" => {}
            ".shared" => {
                let v = lx.var(".shared".into(), line)?;
                m.shared.push((v, false));
            }
            ".entry" | ".func" => m.functions.push(lx.function(w == ".entry", line)?),
            ".global" | ".const" => {
                return Err(lx.err(line, format!("module-scope `{w}` variables are not supported")));
            }
            _ => return Err(lx.err(line, format!("unexpected `{w}` at module scope"))),
        }
    }
    Ok(m)
}

impl Lexer {
    fn next(&mut self) -> Option<(Tok, u32)> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }
    fn peek_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }
    fn line(&self) -> u32 {
        self.toks.get(self.pos.min(self.toks.len().saturating_sub(1))).map_or(0, |t| t.1)
    }
    fn err(&self, line: u32, msg: String) -> SimError {
        SimError::new(format!("line {line}: {msg}"))
    }
    fn skip_stmt(&mut self) {
        while let Some((t, _)) = self.next() {
            if t == Tok::Punct(';') {
                break;
            }
        }
    }
    fn skip_line(&mut self, line: u32) {
        while self.toks.get(self.pos).is_some_and(|t| t.1 == line) {
            self.pos += 1;
        }
    }
    fn expect(&mut self, c: char) -> Result<(), SimError> {
        let line = self.line();
        match self.next() {
            Some((Tok::Punct(x), _)) if x == c => Ok(()),
            t => Err(self.err(line, format!("expected `{c}`, found {:?}", t.map(|t| t.0)))),
        }
    }
    fn word(&mut self) -> Result<String, SimError> {
        let line = self.line();
        match self.next() {
            Some((Tok::Word(w), _)) => Ok(w),
            t => Err(self.err(line, format!("expected a name, found {:?}", t.map(|t| t.0)))),
        }
    }
    fn int(&mut self) -> Result<u64, SimError> {
        let line = self.line();
        match self.next() {
            Some((Tok::Int(v), _)) => Ok(v),
            t => Err(self.err(line, format!("expected a number, found {:?}", t.map(|t| t.0)))),
        }
    }

    /// `[.align N] .type name[len]` after the state space; consumes the `;` if present.
    fn var(&mut self, space: String, line: u32) -> Result<VarDecl, SimError> {
        let mut align = 0;
        let mut ty = String::new();
        loop {
            let w = self.word()?;
            match w.as_str() {
                ".align" => align = self.int()? as u32,
                ".ptr" | ".global" | ".shared" | ".local" | ".const" => {}
                w if w.starts_with('.') => ty = w.to_string(),
                _ => {
                    let mut len = 1;
                    if self.peek_punct('[') {
                        self.next();
                        len = if self.peek_punct(']') { 0 } else { self.int()? as u32 };
                        self.expect(']')?;
                    }
                    if self.peek_punct(';') {
                        self.next();
                    }
                    let align = if align == 0 { type_bytes(&ty) as u32 } else { align };
                    return Ok(VarDecl { space, align, ty, name: w, len, line });
                }
            }
        }
    }

    fn param_list(&mut self) -> Result<Vec<VarDecl>, SimError> {
        let mut ps = Vec::new();
        self.expect('(')?;
        while !self.peek_punct(')') {
            let line = self.line();
            let sp = self.word()?;
            if sp != ".param" && sp != ".reg" {
                return Err(self.err(line, format!("expected `.param`, found `{sp}`")));
            }
            ps.push(self.var(sp, line)?);
            if self.peek_punct(',') {
                self.next();
            }
        }
        self.expect(')')?;
        Ok(ps)
    }

    fn function(&mut self, is_entry: bool, line: u32) -> Result<Function, SimError> {
        let rets = if self.peek_punct('(') { self.param_list()? } else { Vec::new() };
        let name = self.word()?;
        let params = if self.peek_punct('(') { self.param_list()? } else { Vec::new() };
        // Performance directives (.maxntid, .reqntid, ...) up to the body or `;`.
        while !self.peek_punct('{') && !self.peek_punct(';') {
            if self.next().is_none() {
                return Err(self.err(line, format!("function `{name}` has no body")));
            }
        }
        if self.peek_punct(';') {
            self.next();
            return Ok(Function { name, is_entry, params, rets, body: None, line });
        }
        let body = self.body()?;
        Ok(Function { name, is_entry, params, rets, body: Some(body), line })
    }

    fn body(&mut self) -> Result<Vec<Stmt>, SimError> {
        let mut out = Vec::new();
        let mut depth = 0;
        loop {
            let line = self.line();
            let Some((t, _)) = self.next() else {
                return Err(self.err(line, "unterminated function body".into()));
            };
            match t {
                Tok::Punct('{') => {
                    depth += 1;
                    out.push(Stmt::Open);
                }
                Tok::Punct('}') => {
                    depth -= 1;
                    out.push(Stmt::Close);
                    if depth == 0 {
                        return Ok(out);
                    }
                }
                Tok::Punct(';') => {}
                Tok::Punct('@') => {
                    let neg = self.peek_punct('!');
                    if neg {
                        self.next();
                    }
                    let p = self.word()?;
                    let op = self.word()?;
                    out.push(Stmt::Inst(self.inst(Some((p, neg)), op, line)?));
                }
                Tok::Word(w) if self.peek_punct(':') => {
                    self.next();
                    out.push(Stmt::Label(w));
                }
                Tok::Word(w) if w == ".reg" => {
                    self.word()?; // the type: registers are untyped slots
                    let mut names = Vec::new();
                    loop {
                        let n = self.word()?;
                        if self.peek_punct('<') {
                            self.next();
                            let k = self.int()?;
                            self.expect('>')?;
                            names.extend((0..k).map(|i| format!("{n}{i}")));
                        } else {
                            names.push(n);
                        }
                        if self.peek_punct(',') {
                            self.next();
                        } else {
                            break;
                        }
                    }
                    self.expect(';')?;
                    out.push(Stmt::Reg { names });
                }
                Tok::Word(w) if matches!(w.as_str(), ".shared" | ".local" | ".param") => {
                    out.push(Stmt::Var(self.var(w, line)?));
                }
                Tok::Word(w) if w == ".pragma" => self.skip_stmt(),
                Tok::Word(w) if w.starts_with('.') => {
                    return Err(self.err(line, format!("unsupported directive `{w}` in a function body")));
                }
                Tok::Word(w) => out.push(Stmt::Inst(self.inst(None, w, line)?)),
                t => return Err(self.err(line, format!("unexpected {t:?}"))),
            }
        }
    }

    fn inst(
        &mut self,
        guard: Option<(String, bool)>,
        opcode: String,
        line: u32,
    ) -> Result<InstText, SimError> {
        let mut operands = Vec::new();
        while !self.peek_punct(';') {
            operands.push(self.operand()?);
            // `setp`'s `p|q` destination pair reads as two operands.
            if self.peek_punct(',') || self.peek_punct('|') {
                self.next();
            } else if !self.peek_punct(';') {
                let t = self.peek().cloned();
                return Err(self.err(self.line(), format!("`{opcode}`: unexpected {t:?} in operands")));
            }
        }
        self.next();
        Ok(InstText { guard, opcode, operands, line })
    }

    fn operand(&mut self) -> Result<Operand, SimError> {
        let line = self.line();
        let Some((t, _)) = self.next() else {
            return Err(self.err(line, "unexpected end of input".into()));
        };
        Ok(match t {
            Tok::Word(w) if w == "_" => Operand::Sink,
            Tok::Word(w) => Operand::Name(w),
            Tok::Int(v) => Operand::Int(v as i64),
            Tok::F32(v) => Operand::F32(v),
            Tok::F64(v) => Operand::F64(v),
            Tok::Punct('-') => match self.next() {
                Some((Tok::Int(v), _)) => Operand::Int((v as i64).wrapping_neg()),
                t => return Err(self.err(line, format!("expected a number after `-`, found {t:?}"))),
            },
            Tok::Punct('!') => Operand::Name(format!("!{}", self.word()?)),
            Tok::Punct('[') => {
                let mut base = None;
                let mut off = 0i64;
                loop {
                    match self.next() {
                        Some((Tok::Word(w), _)) => base = Some(w),
                        Some((Tok::Int(v), _)) => off = off.wrapping_add(v as i64),
                        Some((Tok::Punct('+'), _)) => {}
                        Some((Tok::Punct('-'), _)) => off = off.wrapping_sub(self.int()? as i64),
                        Some((Tok::Punct(']'), _)) => break,
                        t => return Err(self.err(line, format!("bad address operand near {t:?}"))),
                    }
                }
                Operand::Addr(base, off)
            }
            Tok::Punct(c @ ('{' | '(')) => {
                let close = if c == '{' { '}' } else { ')' };
                let mut names = Vec::new();
                while !self.peek_punct(close) {
                    match self.next() {
                        Some((Tok::Word(w), _)) => names.push(w),
                        Some((Tok::Int(v), _)) => names.push(v.to_string()),
                        t => return Err(self.err(line, format!("bad vector or list element {t:?}"))),
                    }
                    if self.peek_punct(',') {
                        self.next();
                    }
                }
                self.next();
                if c == '{' {
                    Operand::Vector(names)
                } else {
                    Operand::List(names)
                }
            }
            t => return Err(self.err(line, format!("unexpected {t:?} in operands"))),
        })
    }
}
